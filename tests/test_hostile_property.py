"""Property: whatever a sender posts, the webhook answers 200 or 4xx with the contract's shape."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from receiver.intake.validity import shown
from receiver.pipeline import Engine

LABEL_NAMES = ("alertname", "service", "namespace", "rollback_tier", "argocd_app", "gitops_path")
ANSWER_KEYS = {"fingerprint", "alertname", "service", "decision", "reason", "rollback_id"}
ODD_VALUES = (
    "\ud800",
    "a\x00b",
    "k8s/api/../billing",
    "/",
    "emergency",
    "critical",
    "api",
    "TriggerEmergencyRollback",
    "2026-11-26T12:00:00Z",
)

chars = st.characters() | st.characters(categories=["Cs"])  # lone surrogates too
huge = st.sampled_from([1025, 65536]).map(lambda n: "x" * n)
texts = st.text(chars, max_size=12) | st.sampled_from(ODD_VALUES) | huge
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def typed(right: st.SearchStrategy[Any], wrong: bool) -> st.SearchStrategy[Any]:
    """The field's right JSON type; with `wrong`, any JSON value (a wrong type) one time in four."""
    return st.one_of(right, right, right, json_values) if wrong else right


def alerts(wrong: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Alertmanager alerts with odd values, and wrong types in any field when `wrong`."""
    labels = st.dictionaries(st.sampled_from(LABEL_NAMES) | texts, texts, max_size=8)
    trigger_labels = st.fixed_dictionaries(
        {"alertname": st.just("TriggerEmergencyRollback") | texts},
        optional={name: texts for name in LABEL_NAMES[1:]} | {"extra": texts},
    )
    timestamps = st.sampled_from(["2026-11-26T12:00:00Z", "2026-11-26T12:00:00.5+02:00"])
    return st.fixed_dictionaries(
        {
            "status": typed(st.sampled_from(["firing", "resolved"]), wrong),
            "labels": typed(trigger_labels | labels, wrong),
            "fingerprint": typed(texts.filter(bool), wrong),
        },
        optional={
            "annotations": typed(labels, wrong),
            "startsAt": typed(timestamps | texts if wrong else timestamps, wrong),
            "endsAt": typed(st.just("0001-01-01T00:00:00Z"), wrong),
            "generatorURL": typed(texts, wrong),
            "unexpected": json_values,
        },
    )


def messages(wrong: bool) -> st.SearchStrategy[bytes]:
    """Whole deliveries as JSON text, with wrong types anywhere when `wrong`."""
    labels = st.dictionaries(texts, texts, max_size=4)
    message = st.fixed_dictionaries(
        {"alerts": typed(st.lists(alerts(wrong), max_size=4), wrong)},
        optional={
            "version": typed(st.just("4"), wrong),
            "status": typed(st.just("firing"), wrong),
            "truncatedAlerts": typed(st.integers(0, 3), wrong),
            "groupKey": typed(texts, wrong),
            "commonLabels": typed(labels, wrong),
            "routeLabels": typed(labels, wrong),
            "notification_reason": json_values,
            "unexpected": json_values,
        },
    )
    return message.map(lambda m: json.dumps(m).encode())


deep = st.integers(60, 5000).map(lambda n: ("[" * n + "]" * n).encode())
well_typed = messages(wrong=False)
bodies = st.one_of(well_typed, well_typed, well_typed, messages(wrong=True), deep, st.binary())


def check_answer(body: bytes, response: Any) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == 200 or 400 <= response.status_code < 500, text
    assert "Traceback" not in text
    if response.status_code != 200:
        assert "error" in response.get_json()
        event(response.get_json()["error"].split(" ", 1)[-1][:30])
        return
    sent = json.loads(body)["alerts"]
    answered = response.get_json()["alerts"]
    assert len(answered) == len(sent)
    for alert, answer in zip(sent, answered, strict=True):
        event(f"{answer['decision']}/{answer['reason']}")
        assert set(answer) == ANSWER_KEYS
        assert answer["fingerprint"] in (alert["fingerprint"], shown(alert["fingerprint"]))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_any_delivery_answers_200_or_4xx_with_one_entry_per_alert_in_order(
    client: Any, engine: Engine, body: bytes
) -> None:
    response = client.post("/webhook", data=body, content_type="application/json")
    event(f"status {response.status_code}")
    check_answer(body, response)
    assert client.get("/healthz").status_code == 200
