"""Hostile and odd input: unusable alerts, internal errors, deep bodies, unconfigured services."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from receiver.app import create_app
from receiver.intake.json_body import MAX_JSON_DEPTH, json_nesting_problem
from receiver.intake.validity import MAX_FIELD_CHARS
from receiver.pipeline import Engine
from receiver.state.memory import RevisionMemory
from receiver.state.store import Store
from tests.support import Backend, Collector, alert, payload, sample

HUGE = "x" * (MAX_FIELD_CHARS + 1)


def post(client: Any, body: Any) -> Any:
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/webhook", data=text, content_type="application/json")


def answers(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["alerts"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "field",
    ["service", "namespace", "rollback_tier", "argocd_app", "gitops_path", "alertname"],
)
def test_a_read_label_longer_than_1024_characters_is_an_invalid_alert(
    client: Any, engine: Engine, field: str
) -> None:
    bad = alert(fingerprint="f-bad", **{field: HUGE})
    if field in ("alertname", "rollback_tier"):  # still a trigger by its other field
        bad["labels"]["rollback_tier" if field == "alertname" else "alertname"] = (
            "emergency" if field == "alertname" else "TriggerEmergencyRollback"
        )
    (answer,) = answers(post(client, payload(bad)))
    assert (answer["decision"], answer["reason"], answer["service"]) == (
        "skipped",
        "invalid_alert",
        "_invalid",
    )
    record = engine.store.get_record(answer["rollback_id"])
    assert record is not None and f"labels.{field}" in record.checks[0]["detail"]


def test_a_lone_surrogate_in_a_fingerprint_is_an_invalid_alert_stored_in_real_redis(
    make_engine: Callable[..., Engine], real_store: Store
) -> None:
    engine = make_engine(store=real_store)
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    text = json.dumps(payload(alert(fingerprint="PLACEHOLDER"))).replace("PLACEHOLDER", "\\ud800")
    (answer,) = answers(post(client, text))
    assert (answer["reason"], answer["service"]) == ("invalid_alert", "_invalid")
    assert answer["fingerprint"] == "\\ud800"  # escaped, so it can be stored and logged
    record = real_store.get_record(answer["rollback_id"])
    assert record is not None and "lone surrogate" in record.checks[0]["detail"]
    assert real_store.list_records("_invalid")[0].id == answer["rollback_id"]


def test_an_invalid_alert_never_reaches_a_redis_key_or_a_metric_label(
    client: Any, engine: Engine
) -> None:
    marker = "hostile" + "y" * MAX_FIELD_CHARS
    (answer,) = answers(post(client, payload(alert(service=marker, fingerprint="f-key"))))
    assert answer["reason"] == "invalid_alert"
    keys = [str(k) for k in engine.store.client.keys("*")]
    assert keys and not any("hostile" in k for k in keys)
    assert engine.store.services() == set()
    metrics_text = client.get("/metrics").get_data(as_text=True)
    assert "hostile" not in metrics_text
    assert 'rollback_skipped_total{reason="invalid_alert",service="_invalid"}' in metrics_text


def test_an_invalid_emergency_is_told_as_blocked_and_the_next_alert_still_rolls_back(
    client: Any, engine: Engine, collector: Collector, backend: Backend
) -> None:
    bad = alert(fingerprint="f-junk", gitops_path=HUGE)
    good = alert(fingerprint="f-good")
    first, second = answers(post(client, payload(bad, good)))
    assert (first["decision"], first["reason"]) == ("skipped", "invalid_alert")
    assert (second["decision"], second["reason"]) == ("rollback", "passed")
    assert engine.wait_idle(10)
    assert backend.executed() == [second["rollback_id"]]
    blocked = [e for e in collector.events if e.kind == "blocked_emergency"]
    assert [e.rollback_id for e in blocked] == [first["rollback_id"]]


def test_a_resolved_invalid_alert_is_ignored(client: Any) -> None:
    (answer,) = answers(post(client, payload(alert(status="resolved", service=HUGE))))
    assert (answer["decision"], answer["reason"]) == ("ignored", "resolved")


def test_an_unexpected_error_deciding_one_alert_skips_it_alone_with_the_traceback_in_the_log(
    client: Any,
    engine: Engine,
    backend: Backend,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prepare = engine.runner.prepare

    def broken_for_one_alert(trigger: Any, *args: Any) -> Any:
        if trigger.fingerprint == "f-crash":
            raise RuntimeError("boom: a bug while preparing")
        return prepare(trigger, *args)

    monkeypatch.setattr(engine.runner, "prepare", broken_for_one_alert)
    caplog.set_level(logging.ERROR, logger="receiver.pipeline")
    response = post(client, payload(alert(fingerprint="f-crash"), alert(fingerprint="f-fine")))
    first, second = answers(response)
    assert (first["decision"], first["reason"], first["service"]) == (
        "skipped",
        "internal_error",
        "api",
    )
    assert second["decision"] == "rollback"
    assert "boom" not in response.get_data(as_text=True)  # no error text in the answer
    assert any("RuntimeError: boom" in (r.exc_text or "") for r in caplog.records)
    assert engine.wait_idle(10)
    assert backend.executed() == [second["rollback_id"]]
    record = engine.store.get_record(first["rollback_id"])
    assert record is not None and record.reason == "internal_error"
    assert first["rollback_id"] in [e.rollback_id for e in collector.events]


def test_an_unreachable_store_still_fails_the_whole_delivery(
    client: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from receiver.errors import StoreUnavailable

    def unreachable(*args: Any) -> None:
        raise StoreUnavailable("state store unreachable: ConnectionError")

    monkeypatch.setattr(RevisionMemory, "owner_or_recall", unreachable)  # the first read
    assert post(client, payload(alert())).status_code == 503


def test_an_unconfigured_service_is_no_target_counted_and_indexed_as_unconfigured(
    client: Any, engine: Engine
) -> None:
    before = sample("rollback_skipped_total", service="_unconfigured", reason="no_target")
    names = [f"ghost-{i}" for i in range(5)]
    found = answers(post(client, payload(*(alert(n, fingerprint=n) for n in names))))
    assert [(a["service"], a["reason"]) for a in found] == [(n, "no_target") for n in names]
    after = sample("rollback_skipped_total", service="_unconfigured", reason="no_target")
    assert after - before == 5
    assert sample("rollback_skipped_total", service="ghost-0", reason="no_target") == 0
    assert {r.service for r in engine.store.list_records("_unconfigured")} == set(names)
    assert engine.store.services() == set()
    assert [s["service"] for s in engine.statuses()] == ["api"]


def test_the_unconfigured_index_is_bounded(
    make_engine: Callable[..., Engine], fake_store: Store
) -> None:
    bounded = Store(fake_store.client, prefix="bounded:", max_records=10)
    engine = make_engine(store=bounded)
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    for i in range(15):
        answers(post(client, payload(alert(f"ghost-{i}", fingerprint=f"g{i}"))))
    assert bounded.client.zcard("bounded:history:_unconfigured") == 10
    assert not [k for k in bounded.client.keys("bounded:history:ghost*")]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("[" * 5000 + "]" * 5000, "nested deeper than 64"),
        ('{"alerts": ' + "[" * 100 + "]" * 100 + "}", "nested deeper than 64"),
        (b'{"alerts": [\xff]}', "not valid JSON"),
        ('{"alerts": [}', "not valid JSON"),
        ('{"alerts": {}}', "alerts must be a list"),
        ('{"alerts": [{"status": "firing", "labels": [], "fingerprint": "f"}]}', "labels"),
        ('{"alerts": [{"status": "firing", "labels": {"a": 1}, "fingerprint": "f"}]}', "a"),
        ('{"alerts": [{"status": "firing", "labels": {}, "fingerprint": 7}]}', "fingerprint"),
        ('{"alerts": [], "truncatedAlerts": "3"}', "truncatedAlerts"),
    ],
)
def test_a_structurally_broken_body_is_a_400_naming_the_problem(
    client: Any, body: str | bytes, names: str
) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert names in response.get_json()["error"]


def test_nesting_is_measured_without_recursion_and_strings_do_not_count() -> None:
    assert json_nesting_problem(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is None
    assert json_nesting_problem(b"[" * 10**6) is not None
    assert json_nesting_problem(b'["' + b"[" * 500 + b'\\"]"]') is None
    assert json_nesting_problem(b"{" * 65 + b"}" * 65) == "it is nested deeper than 64 levels"


def test_the_api_lists_invalid_and_unconfigured_records_under_their_shared_names(
    client: Any, admin: dict[str, str]
) -> None:
    answers(post(client, payload(alert("ghost", fingerprint="g"), alert(HUGE, fingerprint="h"))))
    for name, service in (("_unconfigured", "ghost"), ("_invalid", "_invalid"), ("ghost", "ghost")):
        listed = client.get(f"/api/v1/rollbacks?service={name}", headers=admin).get_json()
        assert [r["service"] for r in listed["rollbacks"]] == [service]
    other = client.get("/api/v1/rollbacks?service=other", headers=admin).get_json()
    assert other == {"rollbacks": [], "next_cursor": None}


@pytest.mark.parametrize(
    "text",
    [
        "a." * 5000 + "https://user:pw@host/x",
        "1http://user:pw@host",
        "_http://user:pw@host",
        'x.git+ssh://user:pw@host:22/r "redis://:pw@r:6379/0"',
    ],
)
def test_url_userinfo_is_redacted_wherever_a_scheme_run_starts(text: str) -> None:
    from receiver.redaction import redact_userinfo

    redacted = redact_userinfo(text)
    assert "pw" not in redacted and "[REDACTED]@" in redacted


def test_a_huge_label_named_by_a_trigger_rule_service_label_is_an_invalid_alert(
    make_engine: Callable[..., Engine], tmp_path: Any
) -> None:
    config = tmp_path / "rollback.yml"
    config.write_text(
        "services:\n  api: {gitops: {repo: acme/gitops, path: k8s/api}}\n"
        "triggers:\n  - match: {sloth_severity: page}\n    tier: emergency\n"
        "    service_label: sloth_service\n"
    )
    engine = make_engine(ROLLBACK_CONFIG=str(config))
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    found = answers(post(client, payload(alert(sloth_service=HUGE), alert(sloth_service="api"))))
    assert found[0]["reason"] == "invalid_alert"
    assert found[1]["reason"] != "invalid_alert"


def test_explain_reports_an_unusable_alert_without_acting(
    client: Any, admin: dict[str, str], engine: Engine
) -> None:
    response = client.post("/api/v1/explain", json=payload(alert(gitops_path=HUGE)), headers=admin)
    assert response.status_code == 200, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert "invalid_alert" in text and HUGE not in text
    assert engine.store.list_records() == []
