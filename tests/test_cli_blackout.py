"""`rollback-receiver blackout …` against the real Alertmanager binary."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from receiver.app import create_app
from receiver.cli.blackout import blackout
from receiver.clients.alertmanager import AlertmanagerClient, Matcher, blackout_matchers
from tests.procs import Alertmanager, free_port
from tests.support import live_server

Invoke = Callable[..., Result]
ADMIN_TOKEN = "admin-secret-token"  # tests/conftest.py BASE_ENV
SILENCE_ID = re.compile(r"created blackout ([0-9a-f-]{36}) ")


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    with Alertmanager() as running:
        yield running


@pytest.fixture
def am(alertmanager: Alertmanager) -> Iterator[AlertmanagerClient]:
    with AlertmanagerClient(alertmanager.url) as client:
        yield client


@pytest.fixture
def receiver_url(make_engine: Any) -> Iterator[str]:
    """A receiver (the real app, no `triggers:`) that `blackout create` asks for trigger kinds."""
    engine = make_engine()
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        yield url


@pytest.fixture
def run(alertmanager: Alertmanager, receiver_url: str) -> Iterator[Invoke]:
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        merged = {
            "ALERTMANAGER_URL": alertmanager.url,
            "RECEIVER_URL": receiver_url,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "USER": "alice",
            **(env or {}),
        }
        return runner.invoke(blackout, list(args), env=merged)

    yield invoke


def created_id(result: Result) -> str:
    match = SILENCE_ID.search(result.stdout)
    assert match, result.output
    return match.group(1)


def test_create_makes_a_silence_over_one_services_triggers_by_the_user(
    run: Invoke, am: AlertmanagerClient
) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    result = run("create", "--duration", "2h", "--comment", "release freeze", "--service", service)
    assert result.exit_code == 0, result.output
    silence = am.get_silence(created_id(result))
    assert silence.state == "active"
    assert silence.matchers == tuple(blackout_matchers(service))
    assert (silence.created_by, silence.comment) == ("alice", "release freeze")
    expected_end = datetime.now(UTC) + timedelta(hours=2)
    assert abs((silence.ends_at - expected_end).total_seconds()) < 10
    assert am.matching_silences({"service": service, "rollback_tier": "emergency"})
    am.expire_silence(silence.id)


def test_create_without_a_service_covers_every_trigger_and_names_the_creator(
    run: Invoke, am: AlertmanagerClient
) -> None:
    result = run(
        "create", "--duration", "30m", "--comment", "platform upgrade", "--created-by", "bob"
    )
    assert result.exit_code == 0, result.output
    silence = am.get_silence(created_id(result))
    assert silence.matchers == (Matcher("rollback_tier", "critical|emergency", is_regex=True),)
    assert silence.created_by == "bob"
    assert "every service" in result.stdout
    am.expire_silence(silence.id)


def test_list_shows_active_blackouts_and_freezes_with_who_why_and_until(
    run: Invoke, am: AlertmanagerClient
) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    mine = created_id(
        run("create", "--duration", "1h", "--comment", "db migration", "--service", service)
    )
    freeze = am.create_silence(
        [Matcher("rollback_freeze", "true")],
        duration=timedelta(hours=3),
        created_by="carol",
        comment="quarter end",
    )
    other = am.create_silence(
        [Matcher("alertname", "DiskFull")],
        duration=timedelta(hours=1),
        created_by="dave",
        comment="unrelated",
    )
    try:
        result = run("list")
        assert result.exit_code == 0, result.output
        mine_line = next(line for line in result.stdout.splitlines() if mine in line)
        assert "by alice" in mine_line and "db migration" in mine_line
        assert f'service="{service}"' in mine_line and "until " in mine_line
        freeze_line = next(line for line in result.stdout.splitlines() if freeze in line)
        assert "freeze" in freeze_line and "carol" in freeze_line
        assert other not in result.stdout
        assert other in run("list", "--all").stdout
    finally:
        for silence_id in (mine, freeze, other):
            am.expire_silence(silence_id)


def test_end_expires_a_blackout_and_says_who_ended_it(run: Invoke, am: AlertmanagerClient) -> None:
    silence_id = created_id(run("create", "--duration", "1h", "--comment", "oops"))
    result = run("end", silence_id)
    assert result.exit_code == 0, result.output
    assert f"ended blackout {silence_id} (oops) by alice" in result.stdout
    assert am.get_silence(silence_id).state == "expired"
    assert silence_id not in run("list").stdout
    again = run("end", silence_id)
    assert again.exit_code == 1
    assert "has already ended" in again.stderr


def test_end_of_an_unknown_or_malformed_id_is_refused(run: Invoke) -> None:
    unknown = run("end", str(uuid.uuid4()))
    assert unknown.exit_code == 1 and "no silence" in unknown.stderr
    malformed = run("end", "not-a-uuid")
    assert malformed.exit_code == 1 and "is not a silence id" in malformed.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "--duration", "2x", "--comment", "c"), "--duration: '2x' is not a duration"),
        (("create", "--duration", "0", "--comment", "c"), "must be longer than 0"),
        (("create", "--duration", "1h", "--comment", "  "), "--comment: say why"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(run: Invoke, args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [("list",), ("end", str(uuid.uuid4())), ("create", "--duration", "1h", "--comment", "c")],
)
def test_an_unreachable_alertmanager_exits_4_with_one_line(
    run: Invoke, args: tuple[str, ...]
) -> None:
    result = run(*args, env={"ALERTMANAGER_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.exit_code == 4
    assert result.stderr.startswith("error: cannot reach Alertmanager")
    assert "Traceback" not in result.output


def test_without_an_alertmanager_url_the_command_says_so(run: Invoke) -> None:
    result = run("list", env={"ALERTMANAGER_URL": ""})
    assert result.exit_code == 1 and "ALERTMANAGER_URL is not set" in result.stderr


def test_windows_prints_the_next_occurrences_of_the_configured_windows(run: Invoke) -> None:
    env = {"BLACKOUT_WINDOWS": "Sat,Sun 00:00-06:00 UTC; Mon-Fri 22:00-02:00 Europe/Berlin"}
    result = run("windows", "--count", "3", env=env)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if " → " in line]
    assert len(lines) == 3
    starts = [line[:20] for line in lines]
    assert starts == sorted(starts)
    assert "window: Mon-Fri 22:00-02:00 Europe/Berlin" in result.stdout


def test_windows_says_when_there_are_none(run: Invoke) -> None:
    result = run("windows", env={"BLACKOUT_WINDOWS": "none"})
    assert result.exit_code == 0 and "no recurring blackout windows" in result.stdout


def test_windows_with_a_bad_setting_fails_with_the_variable_named(run: Invoke) -> None:
    result = run("windows", env={"BLACKOUT_WINDOWS": "Caturday 00:00-01:00"})
    assert result.exit_code == 1
    assert "BLACKOUT_WINDOWS" in result.stderr and "Caturday" in result.stderr


def test_create_and_end_leave_audit_lines_naming_who_in_the_log(
    run: Invoke, am: AlertmanagerClient, tmp_path: object
) -> None:
    import json
    from pathlib import Path

    log_file = Path(str(tmp_path)) / "audit.log"
    env = {"LOG_FILE": str(log_file)}
    silence_id = created_id(run("create", "--duration", "1h", "--comment", "freeze", env=env))
    assert run("end", silence_id, "--by", "bob", env=env).exit_code == 0
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    audit = [
        (line["msg"], line["actor"], line["silence_id"])
        for line in lines
        if line.get("audit") and not line["msg"].startswith("audit: ")  # not the receiver's
    ]
    assert audit == [
        ("blackout created", "alice", silence_id),
        ("blackout ended", "bob", silence_id),
    ]
