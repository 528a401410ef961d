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


def test_replay_prints_the_checks_after_the_first_block_too(
    make_engine: Any, tmp_path: Path
) -> None:
    engine = make_engine(ROLLBACK_ENABLED="false")
    path = tmp_path / "delivery.json"
    path.write_text(json.dumps(shared_fixture("trigger-emergency-firing.json")))
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        result = run(url, "replay", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith(": skipped / disabled")
    checks = [line.split()[1] for line in result.output.splitlines()[1:] if line.strip()]
    assert checks[0] == "disabled"
    assert {"blackout", "no_recent_change", "cooldown", "global_limit", "dry_run"} <= set(checks)


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


# -- status: what holds rollbacks back --------------------------------------------------------


def test_status_text_names_the_freeze_silence_and_the_window_that_hold_rollbacks(
    make_engine: Any,
) -> None:
    from datetime import timedelta

    from receiver.clients.alertmanager import AlertmanagerClient, Matcher
    from tests.procs import Alertmanager

    with Alertmanager() as am, AlertmanagerClient(am.url) as client:
        engine = make_engine(ALERTMANAGER_URL=am.url)
        app = create_app(engine.settings, engine=engine, start_sweeper=False)
        with live_server(app) as url:
            clear = run(url, "status", "--service", "api")
            assert clear.exit_code == 0, clear.output
            assert "  blackout       none" in clear.output
            freeze = client.create_silence(
                [Matcher("rollback_freeze", "true")],
                duration=timedelta(hours=1),
                created_by="carol",
                comment="quarter end",
            )
            held = run(url, "status", "--service", "api")
            as_json = json.loads(run(url, "status", "--service", "api", "--json").output)
        windowed = make_engine(BLACKOUT_WINDOWS="Daily 00:00-24:00 UTC")
        app = create_app(windowed.settings, engine=windowed, start_sweeper=False)
        with live_server(app) as url:
            in_window = run(url, "status", "--service", "api")
        client.expire_silence(freeze)
    assert held.exit_code == 0, held.output
    assert as_json["services"][0]["blackout"]["silence"]
    assert f"  blackout       silence: silenced by {freeze} (carol: quarter end)" in held.output
    assert "none" not in held.output.split("blackout", 1)[1].split("\n", 1)[0]
    assert in_window.exit_code == 0, in_window.output
    assert "  blackout       window Daily 00:00-24:00 UTC (BLACKOUT_WINDOWS)" in in_window.output


def test_status_text_shows_fields_the_receiver_adds_later(live: tuple[str, Any]) -> None:
    from receiver.cli.rendering import status_lines

    service = {
        "service": "api",
        "enabled": True,
        "locked_by": None,
        "cooldown_seconds_left": 0,
        "rollbacks_last_hour": 0,
        "rollbacks_last_day": 0,
        "limits": {"per_hour": 1, "per_day": 3},
        "blackout": {"active": None, "next": [], "silence": None},
        "last_rollback": None,
        "paused_targets": ["app-prod"],
    }
    lines = status_lines([service])
    assert '  paused targets ["app-prod"]' in lines
    assert "  last skip      -" in lines


def test_status_text_says_when_auto_sync_was_left_off(live: tuple[str, Any]) -> None:
    from receiver.cli.rendering import status_lines

    service = {
        "service": "api",
        "argocd_autosync_disabled": {
            "app": "api-prod",
            "since": "2026-12-01T10:00:00Z",
            "rollback_id": "rb-1",
        },
        "last_skip": {
            "id": "rb-2",
            "reason": "blackout",
            "created_at": "T1",
            "repeats": 2,
            "last_seen_at": "T2",
        },
    }
    lines = status_lines([service])
    assert (
        "  argo cd        auto-sync of api-prod OFF since 2026-12-01T10:00:00Z "
        "(turned off by rb-1): re-enable it"
    ) in lines
    assert "  last skip      rb-2 blackout at T1, 2 repeat(s), last T2" in lines


# -- history ------------------------------------------------------------------------------------


def columns(output: str) -> list[dict[str, str]]:
    """The history table's rows as header -> cell (cells start where their header starts)."""
    header, *rows = output.splitlines()
    names = header.split("  ")
    names = [n.strip() for n in names if n.strip()]
    starts = [header.index(n) for n in names]
    ends = [*starts[1:], None]
    return [
        {n: row[s:e].strip() for n, s, e in zip(names, starts, ends, strict=True)} for row in rows
    ]


def test_the_history_table_has_headers_the_alertname_and_separate_from_and_to(
    live: tuple[str, Any], backend: Backend
) -> None:
    url, engine = live
    pending = engine.handle_alert(parse_alert(alert(), 0)).rollback_id
    manual = run(url, "rollback", "--service", "api", "--target-commit", "abc1234", "--force")
    assert manual.exit_code == 0, manual.output
    assert engine.wait_idle(10)
    result = run(url, "history")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split() == [
        "ID",
        "CREATED",
        "(UTC)",
        "SERVICE",
        "ALERTNAME",
        "TIER",
        "STATE",
        "REASON",
        "FROM",
        "TO",
        "ACTOR",
    ]
    done, held = columns(result.output)
    assert (held["ID"], held["ALERTNAME"], held["STATE"]) == (
        pending,
        "TriggerEmergencyRollback",
        "pending_approval",
    )
    # FROM is what was live, TO what it restores, whatever the state.
    assert (held["FROM"], held["TO"]) == ("bad1234", "good123")
    assert (done["ALERTNAME"], done["STATE"], done["FROM"], done["TO"]) == (
        "Manual",
        "completed",
        "bad1234",
        "abc1234",
    )
    assert done["ACTOR"] == "frank (token admin)"


# -- rollback --wait ----------------------------------------------------------------------------


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    import receiver.cli.operations

    monkeypatch.setattr(receiver.cli.operations, "POLL_SECONDS", 0.05)


@pytest.fixture
def served(make_engine: Any) -> Iterator[tuple[str, Any]]:
    engine = make_engine()
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        yield url, engine


def test_rollback_wait_exits_0_once_the_rollback_completed(
    served: tuple[str, Any], backend: Backend, quick_polls: None
) -> None:
    url, _engine = served
    backend.execute_seconds = 0.5
    result = run(url, "rollback", "--service", "api", "--wait")
    assert result.exit_code == 0, result.output
    first, last = result.stdout.splitlines()
    assert first.startswith("rollback (passed): ") and " running " in first
    assert last.startswith("completed: ") and " completed (passed) " in last
    assert "waiting up to 900s" in result.stderr


def test_rollback_wait_exits_1_when_the_rollback_failed_and_says_where(
    served: tuple[str, Any], backend: Backend, quick_polls: None
) -> None:
    url, engine = served
    backend.fail_stage = "gitops"
    result = run(url, "rollback", "--service", "api", "--wait", "--json")
    assert result.exit_code == 1, result.output
    answer = json.loads(result.stdout)
    assert answer["record"]["state"] == "failed"
    assert engine.wait_idle(10)  # the record says failed a moment before the lock is free
    text = run(url, "rollback", "--service", "api", "--force", "--wait")
    assert text.exit_code == 1
    assert text.stdout.splitlines()[-1].startswith("failed at gitops: ")


def test_rollback_wait_exits_1_when_it_is_still_running_at_the_timeout(
    served: tuple[str, Any], backend: Backend, quick_polls: None
) -> None:
    import threading

    url, engine = served
    backend.release = threading.Event()
    try:
        result = run(url, "rollback", "--service", "api", "--wait", "--timeout", "1")
    finally:
        backend.release.set()
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[-1].startswith("still running after 1s")
    assert engine.wait_idle(10)


def test_rollback_wait_of_a_refused_rollback_exits_1_at_once(
    served: tuple[str, Any], backend: Backend, quick_polls: None
) -> None:
    url, _engine = served
    assert run(url, "rollback", "--service", "api", "--wait").exit_code == 0
    refused = run(url, "rollback", "--service", "api", "--wait")
    assert refused.exit_code == 1
    assert "409" in refused.stderr and "cooldown" in refused.stderr
    assert "waiting" not in refused.stderr
    lone = run(url, "rollback", "--service", "api", "--timeout", "5")
    assert lone.exit_code == 1 and "--timeout is how long --wait waits" in lone.stderr


def test_a_completed_rollback_that_was_not_effective_is_exit_1() -> None:
    from receiver.cli.operations import outcome_of

    assert outcome_of({"state": "completed", "not_effective": False}, 900) == (0, "completed")
    code, words = outcome_of({"state": "completed", "not_effective": True}, 900)
    assert code == 1 and "not effective" in words
    assert outcome_of({"state": "interrupted"}, 900)[0] == 1


def test_a_completion_whose_errors_were_not_verified_says_so() -> None:
    from receiver.cli.operations import outcome_of

    record = {"state": "completed", "not_effective": False, "details": {"errors_fell": "unknown"}}
    code, words = outcome_of(record, 900)
    assert code == 0 and "not verified" in words


def test_a_receiver_gone_for_the_whole_wait_exits_4(
    monkeypatch: pytest.MonkeyPatch, quick_polls: None
) -> None:
    from receiver.cli.operations import wait_for_outcome
    from tests.procs import free_port

    monkeypatch.setenv("RECEIVER_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SystemExit) as exited:
        wait_for_outcome("rb-x", 0.3)
    assert exited.value.code == 4


# -- auth errors and the acting person ------------------------------------------------------------


def test_a_401_says_to_set_admin_token_or_admin_token_file(live: tuple[str, Any]) -> None:
    url, _ = live
    wrong = run(url, "status", token="wrong")
    assert wrong.exit_code == 1
    assert wrong.stderr.strip() == (
        "error: 401: missing or invalid admin token; "
        "set ADMIN_TOKEN or ADMIN_TOKEN_FILE to the receiver's admin token"
    )
    unset = CliRunner().invoke(
        main, ["history"], env={"RECEIVER_URL": url, "ADMIN_TOKEN": None, "USER": "frank"}
    )
    assert unset.exit_code == 1
    assert "set ADMIN_TOKEN or ADMIN_TOKEN_FILE" in unset.stderr
    assert "(none is set here)" in unset.stderr


def test_admin_token_file_is_read_for_each_call(live: tuple[str, Any], tmp_path: Path) -> None:
    url, _ = live
    token_file = tmp_path / "token"
    token_file.write_text("admin-secret-token\n")
    env = {"RECEIVER_URL": url, "ADMIN_TOKEN": None, "ADMIN_TOKEN_FILE": str(token_file)}
    assert CliRunner().invoke(main, ["status"], env=env).exit_code == 0
    token_file.write_text("rotated-elsewhere\n")
    assert CliRunner().invoke(main, ["status"], env=env).exit_code == 1


def test_a_disabled_api_is_said_to_be_the_receivers(make_engine: Any) -> None:
    engine = make_engine(ADMIN_TOKEN="")
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        result = run(url, "status")
    assert result.exit_code == 1
    assert "403: admin API disabled" in result.stderr and url in result.stderr


def test_without_user_the_actor_is_logname(make_engine: Any, backend: Backend) -> None:
    engine = make_engine()
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        env = {
            "RECEIVER_URL": url,
            "ADMIN_TOKEN": "admin-secret-token",
            "USER": None,
            "LOGNAME": "lena",
        }
        result = CliRunner().invoke(main, ["rollback", "--service", "api"], env=env)
        assert result.exit_code == 0, result.output
        assert engine.wait_idle(10)
    assert engine.store.list_records(limit=1)[0].actor == "lena (token admin)"


@pytest.mark.parametrize(
    ("user", "logname", "account", "expected"),
    [
        ("frank", "lena", "root", "frank"),
        (None, "lena", "root", "lena"),
        ("", "  ", "runner", "runner"),
        (None, None, None, "cli"),
    ],
)
def test_the_acting_person_falls_back_from_user_to_logname_to_the_account_to_cli(
    monkeypatch: pytest.MonkeyPatch,
    user: str | None,
    logname: str | None,
    account: str | None,
    expected: str,
) -> None:
    import pwd
    import types

    from receiver.cli.shared import acting_person

    for name, value in (("USER", user), ("LOGNAME", logname)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)

    def getpwuid(uid: int) -> Any:
        if account is None:
            raise KeyError(f"getpwuid(): uid not found: {uid}")
        return types.SimpleNamespace(pw_name=account)

    monkeypatch.setattr(pwd, "getpwuid", getpwuid)
    assert acting_person() == expected


# -- help -----------------------------------------------------------------------------------------


def every_option() -> list[tuple[str, Any]]:
    import click

    found: list[tuple[str, Any]] = []

    def walk(command: click.Command, path: str) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help", "version"):
                found.append((f"{path} {param.opts[0]}", param))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")

    walk(main, "rollback-receiver")
    return found


@pytest.mark.parametrize(("where", "option"), every_option(), ids=lambda v: str(v))
def test_every_options_help_states_its_default(where: str, option: Any) -> None:
    import click

    record = option.get_help_record(click.Context(main))
    assert record is not None, where
    assert "default" in record[1] or "[required]" in record[1], f"{where}: {record[1]}"


def test_help_of_every_command_renders(live: tuple[str, Any]) -> None:
    for path in (
        [],
        ["rollback"],
        ["history"],
        ["status"],
        ["check"],
        ["monitor"],
        ["serve"],
        ["blackout", "create"],
    ):
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_the_wait_polls_on_through_a_receiver_answering_5xx(
    monkeypatch: pytest.MonkeyPatch, quick_polls: None
) -> None:
    from receiver.cli.operations import wait_for_outcome
    from tests.procs import Answer, LoopbackServer

    class Restarting(LoopbackServer):
        """Answers 503 twice (Redis failing over), then the completed record."""

        def __init__(self) -> None:
            super().__init__()
            self.asked = 0

        def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
            self.asked += 1
            if self.asked <= 2:
                return 503, b'{"error": "state store unreachable"}', {}
            record = {"id": "rb-x", "state": "completed", "not_effective": False}
            return 200, json.dumps(record).encode(), {"Content-Type": "application/json"}

    with Restarting() as server:
        monkeypatch.setenv("RECEIVER_URL", f"http://127.0.0.1:{server.port}")
        record = wait_for_outcome("rb-x", 5)
    assert record["state"] == "completed" and server.asked == 3
