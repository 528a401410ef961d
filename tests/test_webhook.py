"""POST /webhook: parsing, auth, limits and one answer per alert."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from receiver.app import create_app
from tests.conftest import shared_fixture
from tests.support import Backend, alert, payload, sample


def post(client: Any, body: Any, **headers: str) -> Any:
    return client.post(
        "/webhook", data=json.dumps(body), content_type="application/json", headers=headers
    )


def test_a_real_alertmanager_delivery_starts_a_rollback_and_answers_with_its_id(
    client: Any, engine: Any, backend: Backend
) -> None:
    body = shared_fixture("trigger-emergency-firing.json")
    response = post(client, body)
    assert response.status_code == 200
    (answer,) = response.get_json()["alerts"]
    assert answer["fingerprint"] == "87f1f7584791744e"
    assert answer["alertname"] == "TriggerEmergencyRollback"
    assert answer["service"] == "api"
    assert (answer["decision"], answer["reason"]) == ("rollback", "passed")
    assert answer["rollback_id"].startswith("rb-")
    assert engine.wait_idle(10)
    assert backend.executed() == [answer["rollback_id"]]
    record = engine.store.get_record(answer["rollback_id"])
    assert record.state == "completed"
    assert [s.name for s in record.stages] == ["gitops", "validation"]


def test_a_resolved_delivery_is_ignored_and_writes_no_history(client: Any, engine: Any) -> None:
    response = post(client, shared_fixture("trigger-emergency-resolved.json"))
    (answer,) = response.get_json()["alerts"]
    assert (answer["decision"], answer["reason"], answer["rollback_id"]) == (
        "ignored",
        "resolved",
        None,
    )
    assert engine.store.list_records() == []


def test_an_alert_that_is_not_a_trigger_is_ignored(client: Any) -> None:
    other = alert(alertname="HighMemory")
    other["labels"].pop("rollback_tier")
    (answer,) = post(client, payload(other)).get_json()["alerts"]
    assert (answer["decision"], answer["reason"]) == ("ignored", "not_a_trigger")


def test_a_duplicate_delivery_answers_duplicate_with_the_original_rollback_id(
    client: Any, engine: Any, backend: Backend
) -> None:
    first = post(client, payload(alert())).get_json()["alerts"][0]
    second = post(client, payload(alert())).get_json()["alerts"][0]
    assert (second["decision"], second["reason"]) == ("skipped", "duplicate")
    assert second["rollback_id"] == first["rollback_id"]
    assert engine.wait_idle(10)
    assert len(backend.executed()) == 1


def test_alerts_for_different_services_in_one_delivery_are_decided_independently(
    make_engine: Any, backend: Backend
) -> None:
    engine = make_engine(ROLLBACK_CONFIG=None)
    app = create_app(engine.settings, engine=engine, start_sweeper=False)
    body = payload(alert("api"), alert("unknown-svc"))
    answers = post(app.test_client(), body).get_json()["alerts"]
    assert [(a["service"], a["decision"], a["reason"]) for a in answers] == [
        ("api", "rollback", "passed"),
        ("unknown-svc", "skipped", "no_target"),
    ]


def test_an_empty_alert_list_answers_200_with_no_alerts(client: Any) -> None:
    response = post(client, payload())
    assert response.status_code == 200
    assert response.get_json() == {"alerts": []}


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda p: p.update(alerts="nope"), "alerts must be a list"),
        (lambda p: p["alerts"][0].pop("status"), "alerts[0].status"),
        (lambda p: p["alerts"][0].pop("labels"), "alerts[0].labels"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda p: p["alerts"][0]["labels"].update(service=5), "alerts[0].labels.service"),
    ],
)
def test_a_malformed_payload_is_a_400_naming_the_field(
    client: Any, mutate: Any, field: str
) -> None:
    body = payload(alert())
    mutate(body)
    response = post(client, body)
    assert response.status_code == 400
    assert field in response.get_json()["error"]


def test_unknown_and_newer_fields_are_tolerated(client: Any) -> None:
    body = payload(alert())
    body.update(notification_reason="first notification", routeLabels={"x": "y"}, extra=[1])
    body["alerts"][0]["somethingNew"] = {"a": 1}
    assert post(client, body).status_code == 200


def test_a_body_that_is_not_json_is_a_415_or_400(client: Any) -> None:
    assert client.post("/webhook", data="x", content_type="text/plain").status_code == 415
    bad = client.post("/webhook", data="{nope", content_type="application/json")
    assert bad.status_code == 400
    assert "JSON" in bad.get_json()["error"]


def test_a_chunked_body_over_one_mebibyte_is_a_413_and_counted(client: Any) -> None:
    before = sample("rollback_webhook_requests_total", code="413")
    big = json.dumps(payload(alert())).replace("budget burning", "x" * (1024 * 1024)).encode()

    response = client.post(
        "/webhook",
        input_stream=io.BytesIO(big),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert sample("rollback_webhook_requests_total", code="413") == before + 1


def test_a_body_over_one_mebibyte_is_a_413(client: Any) -> None:
    body = payload(alert())
    body["alerts"][0]["annotations"]["blob"] = "x" * (1024 * 1024)
    response = post(client, body)
    assert response.status_code == 413
    assert "1 MiB" in response.get_json()["error"]


def test_the_webhook_demands_the_token_when_one_is_set(make_engine: Any) -> None:
    engine = make_engine(WEBHOOK_TOKEN="hook-token-123")
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    assert post(client, payload()).status_code == 401
    assert post(client, payload(), Authorization="Bearer wrong").status_code == 401
    assert post(client, payload(), Authorization="Bearer hook-token-123").status_code == 200


def test_basic_auth_and_the_token_are_both_accepted_when_both_are_configured(
    make_engine: Any,
) -> None:
    engine = make_engine(
        WEBHOOK_TOKEN="hook-token-123", WEBHOOK_USERNAME="am", WEBHOOK_PASSWORD="pw-456789"
    )
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    good = base64.b64encode(b"am:pw-456789").decode()
    bad = base64.b64encode(b"am:nope").decode()
    assert post(client, payload(), Authorization=f"Basic {good}").status_code == 200
    assert post(client, payload(), Authorization=f"Basic {bad}").status_code == 401
    assert post(client, payload(), Authorization="Basic !!!").status_code == 401
    assert post(client, payload(), Authorization="Bearer hook-token-123").status_code == 200


def test_the_webhook_is_a_503_while_the_state_store_is_unreachable(
    make_engine: Any, backend: Backend
) -> None:
    import redis

    from receiver.state.store import Store, client_options

    dead = Store(redis.Redis(host="127.0.0.1", port=1, **client_options()))
    engine = make_engine(store=dead)
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    response = post(client, payload(alert()))
    assert response.status_code == 503
    assert "state store unreachable" in response.get_json()["error"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    assert backend.executed() == []


def test_the_webhook_answers_before_a_slow_rollback_ends(
    client: Any, engine: Any, backend: Backend
) -> None:
    import threading

    backend.release = threading.Event()  # the rollback blocks until the answer has been read
    answer = post(client, payload(alert())).get_json()["alerts"][0]
    assert answer["decision"] == "rollback"
    assert engine.store.get_record(answer["rollback_id"]).state == "running"
    backend.release.set()
    assert engine.wait_idle(10)
    assert engine.store.get_record(answer["rollback_id"]).state == "completed"


def test_a_truncated_delivery_is_logged_as_a_warning(make_engine: Any, tmp_path: Any) -> None:
    log_file = tmp_path / "receiver.log"
    engine = make_engine(LOG_FILE=str(log_file))
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    body = payload(alert())
    body["truncatedAlerts"] = 3
    assert post(client, body).status_code == 200
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    warning = next(line for line in lines if "truncated" in line["msg"])
    assert warning["level"] == "warning" and warning["truncated_alerts"] == 3
    decision = next(line for line in lines if line.get("decision") == "rollback")
    assert decision["rollback_id"] and decision["fingerprint"] == body["alerts"][0]["fingerprint"]
