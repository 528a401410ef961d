"""The admin API: auth, history, manual rollbacks, approvals, status and explain."""

from __future__ import annotations

import json
from typing import Any

from receiver.app import create_app
from tests.support import Backend, alert, payload


def test_the_api_is_forbidden_while_admin_token_is_unset(make_engine: Any) -> None:
    engine = make_engine(ADMIN_TOKEN="")
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    for path in ("/api/v1/rollbacks", "/api/v1/status"):
        response = client.get(path, headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403
        assert "disabled" in response.get_json()["error"]


def test_the_api_needs_a_valid_admin_token(client: Any, admin: dict[str, str]) -> None:
    assert client.get("/api/v1/rollbacks").status_code == 401
    bad = client.get("/api/v1/rollbacks", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.get_json() == {"error": "missing or invalid admin token"}
    assert client.get("/api/v1/rollbacks", headers=admin).status_code == 200


def test_history_is_newest_first_and_filters_by_service(
    client: Any, engine: Any, admin: dict[str, str]
) -> None:
    ids = []
    for service in ("api", "web", "api"):
        body = payload(alert(service, starts_at=f"2026-11-26T1{len(ids)}:00:00Z"))
        ids.append(client.post("/webhook", json=body).get_json()["alerts"][0]["rollback_id"])
        engine.wait_idle(10)
    records = client.get("/api/v1/rollbacks", headers=admin).get_json()["rollbacks"]
    assert [r["id"] for r in records] == list(reversed(ids))
    only_api = client.get("/api/v1/rollbacks?service=api&limit=1", headers=admin).get_json()
    assert [r["id"] for r in only_api["rollbacks"]] == [ids[2]]
    assert client.get("/api/v1/rollbacks?limit=zero", headers=admin).status_code == 400


def test_a_record_shows_every_stage_with_timestamps(
    client: Any, engine: Any, admin: dict[str, str]
) -> None:
    rid = client.post("/webhook", json=payload(alert())).get_json()["alerts"][0]["rollback_id"]
    assert engine.wait_idle(10)
    record = client.get(f"/api/v1/rollbacks/{rid}", headers=admin).get_json()
    for key in (
        "id",
        "service",
        "namespace",
        "tier",
        "decision",
        "reason",
        "state",
        "trigger",
        "rolled_back_from",
        "target",
        "stages",
        "created_at",
        "finished_at",
        "actor",
        "not_effective",
    ):
        assert key in record, key
    assert record["state"] == "completed"
    assert record["trigger"]["fingerprint"] and record["trigger"]["startsAt"]
    assert all(s["started_at"] and s["finished_at"] and s["ok"] for s in record["stages"])
    assert record["rolled_back_from"] == {"commit": "bad1234"}
    assert record["target"]["revert_commit"] == "revert99"
    missing = client.get("/api/v1/rollbacks/rb-nope", headers=admin)
    assert missing.status_code == 404 and "rb-nope" in missing.get_json()["error"]


def test_a_manual_rollback_through_the_api_records_the_actor(
    client: Any, engine: Any, admin: dict[str, str], backend: Backend
) -> None:
    headers = {**admin, "X-Rollback-Actor": "erin"}
    response = client.post(
        "/api/v1/rollbacks",
        headers=headers,
        json={"service": "api", "reason": "bad config", "mode": "gitops"},
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["decision"] == "rollback"
    assert body["record"]["actor"] == "erin (token admin)"
    assert body["record"]["automatic"] is False
    assert engine.wait_idle(10)
    again = client.post("/api/v1/rollbacks", headers=admin, json={"service": "api"})
    assert again.status_code == 409 and "cooldown" in again.get_json()["error"]
    forced = client.post("/api/v1/rollbacks", headers=admin, json={"service": "api", "force": True})
    assert forced.status_code == 202
    assert engine.wait_idle(10)
    assert len(backend.executed()) == 2


def test_a_manual_rollback_request_is_validated(client: Any, admin: dict[str, str]) -> None:
    cases = [
        ({}, "service is required"),
        ({"service": "api", "mode": "yolo"}, "mode must be"),
        ({"service": "api", "force": "yes"}, "force must be"),
    ]
    for body, message in cases:
        response = client.post("/api/v1/rollbacks", headers=admin, json=body)
        assert response.status_code == 400 and message in response.get_json()["error"]
    text = client.post("/api/v1/rollbacks", headers=admin, data="x", content_type="text/plain")
    assert text.status_code == 400


def test_approve_and_reject_answer_404_and_409_as_the_contract_says(
    make_engine: Any, admin: dict[str, str]
) -> None:
    engine = make_engine(REQUIRE_APPROVAL="true")
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    answer = client.post("/webhook", json=payload(alert())).get_json()["alerts"][0]
    assert answer["decision"] == "pending_approval"
    rid = answer["rollback_id"]
    assert client.post("/api/v1/rollbacks/rb-x/approve", headers=admin).status_code == 404
    approved = client.post(f"/api/v1/rollbacks/{rid}/approve", headers=admin)
    assert approved.status_code == 200 and approved.get_json()["state"] == "running"
    again = client.post(f"/api/v1/rollbacks/{rid}/approve", headers=admin)
    assert again.status_code == 409 and "not pending" in again.get_json()["error"]
    assert client.post(f"/api/v1/rollbacks/{rid}/reject", headers=admin).status_code == 409
    assert engine.wait_idle(10)


def test_status_reports_cooldown_limits_blackout_and_the_last_rollback(
    client: Any, engine: Any, admin: dict[str, str]
) -> None:
    client.post("/webhook", json=payload(alert()))
    assert engine.wait_idle(10)
    (status,) = client.get("/api/v1/status?service=api", headers=admin).get_json()["services"]
    assert status["rollbacks_last_hour"] == 1 and status["rollbacks_last_day"] == 1
    assert 3500 < status["cooldown_seconds_left"] <= 3600
    assert status["blackout"]["active"] is None
    assert status["last_rollback"]["state"] == "completed"


def test_explain_runs_every_check_and_acts_on_nothing(
    client: Any, engine: Any, admin: dict[str, str], backend: Backend
) -> None:
    response = client.post("/api/v1/explain", headers=admin, json=payload(alert()))
    (answer,) = response.get_json()["alerts"]
    assert answer["decision"] == "rollback" and answer["rollback_id"] is None
    assert [c["check"] for c in answer["checks"]][:3] == ["disabled", "tier_disabled", "no_target"]
    assert all(c["passed"] for c in answer["checks"])
    assert backend.executed() == [] and engine.store.list_records() == []
    # Explain does not record the episode: the real delivery still rolls back.
    real = client.post("/webhook", json=payload(alert())).get_json()["alerts"][0]
    assert real["decision"] == "rollback"
    assert engine.wait_idle(10)
    blocked = client.post(
        "/api/v1/explain",
        headers=admin,
        data=json.dumps(payload(alert(starts_at="2026-11-26T13:00:00Z"))),
        content_type="application/json",
    ).get_json()["alerts"][0]
    assert blocked["reason"] == "cooldown"
    by_name = {c["check"]: c for c in blocked["checks"]}
    assert by_name["cooldown"]["passed"] is False and "s left" in by_name["cooldown"]["detail"]
    # Every check after the first block is still evaluated and shown.
    names = [c["check"] for c in blocked["checks"]]
    assert names[names.index("cooldown") :] == [
        "cooldown",
        "rate_limit_hour",
        "rate_limit_day",
        "global_limit",
        "approval",
        "dry_run",
    ]
    assert by_name["rate_limit_hour"]["passed"] is False  # 1 in the last hour, MAX 1
    assert by_name["locked"]["passed"] is True and by_name["global_limit"]["passed"] is True


def test_explain_evaluates_the_checks_after_a_blackout_blocks(
    make_engine: Any, admin: dict[str, str], backend: Backend
) -> None:
    engine = make_engine(BLACKOUT_WINDOWS="Mon-Sun 00:00-23:59 UTC")
    backend.already_rolled_back = True
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    (answer,) = client.post("/api/v1/explain", headers=admin, json=payload(alert())).get_json()[
        "alerts"
    ]
    assert answer["decision"] == "skipped" and answer["reason"] == "blackout"
    by_name = {c["check"]: c for c in answer["checks"]}
    assert by_name["blackout"]["passed"] is False
    assert by_name["already_rolled_back"]["passed"] is False  # shown, though blackout decided
    assert by_name["no_recent_change"]["passed"] is True
    assert {"locked", "cooldown", "global_limit", "dry_run"} <= set(by_name)
    assert backend.executed() == [] and engine.store.list_records() == []


def test_explain_says_not_evaluated_when_there_is_no_target_to_inspect(
    make_engine: Any, admin: dict[str, str]
) -> None:
    engine = make_engine(GITOPS_REPO="", GITOPS_PATH="")
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    (answer,) = client.post("/api/v1/explain", headers=admin, json=payload(alert())).get_json()[
        "alerts"
    ]
    assert answer["reason"] == "no_target"
    by_name = {c["check"]: c for c in answer["checks"]}
    assert by_name["already_rolled_back"] == {
        "check": "already_rolled_back",
        "passed": None,
        "detail": "not evaluated: no GitOps repo or Argo CD app configured for api",
    }
    assert by_name["blackout"]["passed"] is True and "cooldown" in by_name
