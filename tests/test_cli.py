"""The operator commands talk to the receiver's API; exit 0 done, 1 refused, 4 unreachable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from receiver.app import create_app
from receiver.cli import main
from receiver.intake.payload import parse_alert
from tests.conftest import shared_fixture
from tests.support import Backend, alert, live_server


@pytest.fixture
def live(make_engine: Any) -> Iterator[tuple[str, Any]]:
    engine = make_engine(REQUIRE_APPROVAL="true")
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        yield url, engine


def run(url: str, *args: str, token: str = "admin-secret-token", user: str = "frank") -> Any:
    env = {"RECEIVER_URL": url, "ADMIN_TOKEN": token, "USER": user}
    return CliRunner().invoke(main, list(args), env=env)


def test_approve_from_the_cli_runs_the_pending_rollback_and_records_the_user(
    live: tuple[str, Any], backend: Backend
) -> None:
    url, engine = live
    answer = engine.handle_alert(parse_alert(alert(), 0))
    assert answer.decision == "pending_approval"
    result = run(url, "approve", answer.rollback_id)
    assert result.exit_code == 0, result.output
    assert "approved" in result.output and answer.rollback_id in result.output
    assert engine.wait_idle(10)
    record = engine.store.get_record(answer.rollback_id)
    assert record.state == "completed"
    assert record.audit[-1]["actor"] == "frank (token admin)"
    again = run(url, "approve", answer.rollback_id)
    assert again.exit_code == 1 and "409" in again.output and "not pending" in again.output


def test_reject_history_and_status(live: tuple[str, Any]) -> None:
    url, engine = live
    rid = engine.handle_alert(parse_alert(alert(), 0)).rollback_id
    assert run(url, "reject", rid).exit_code == 0
    history = run(url, "history", "--service", "api")
    assert history.exit_code == 0 and rid in history.output and "rejected" in history.output
    as_json = json.loads(run(url, "history", "--json").output)
    assert as_json["rollbacks"][0]["id"] == rid
    status = run(url, "status", "--service", "api")
    assert status.exit_code == 0 and status.output.startswith("api\n")
    assert "  lock           free" in status.output


def test_a_manual_rollback_from_the_cli(make_engine: Any, backend: Backend) -> None:
    engine = make_engine()
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        result = run(
            url,
            "rollback",
            "--service",
            "api",
            "--gitops-only",
            "--target-commit",
            "abc1234",
            "--reason",
            "bad config",
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith("rollback (passed)")
        assert engine.wait_idle(10)
        refused = run(url, "rollback", "--service", "api")
        assert refused.exit_code == 1 and "cooldown" in refused.output
        both = run(url, "rollback", "--service", "api", "--gitops-only", "--argocd-only")
        assert both.exit_code == 1 and "exclude" in both.output
        records = engine.store.list_records(limit=10)
        record = records[-1]  # the first, oldest
        assert (record.mode, record.actor, record.target["commit"]) == (
            "gitops",
            "frank (token admin)",
            "abc1234",
        )


def test_replay_prints_every_check_of_a_stored_payload(
    live: tuple[str, Any], tmp_path: Path
) -> None:
    url, _engine = live
    path = tmp_path / "delivery.json"
    path.write_text(json.dumps(shared_fixture("trigger-emergency-firing.json")))
    result = run(url, "replay", str(path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("TriggerEmergencyRollback api (87f1f7584791744e): pending_approval")
    assert any("pass  duplicate" in line for line in lines)
    assert run(url, "replay", str(tmp_path / "missing.json")).exit_code == 1


def test_an_unreachable_receiver_exits_4_and_a_bad_token_exits_1(live: tuple[str, Any]) -> None:
    url, _ = live
    down = run("http://127.0.0.1:9", "history")
    assert down.exit_code == 4 and "cannot reach the receiver" in down.output
    denied = run(url, "history", token="wrong")
    assert denied.exit_code == 1 and "401" in denied.output
    assert "wrong" not in denied.output


def test_posting_the_sample_payload_file_gives_a_decision(live: tuple[str, Any]) -> None:
    url, _ = live
    import requests

    body = json.loads(
        (Path(__file__).resolve().parents[1] / "examples" / "alert-firing.json").read_text()
    )
    answer = requests.post(url + "/webhook", json=body, timeout=5).json()["alerts"][0]
    assert answer["service"] == "app" and answer["decision"] == "skipped"
    assert answer["reason"] == "no_target"
