"""`blackout create` silences every trigger kind the receiver names: real Alertmanager, real app."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from receiver.app import create_app, default_silence_check
from receiver.cli.blackout import blackout
from receiver.clients.alertmanager import AlertmanagerClient, Matcher
from receiver.decide.targets import parse_rollback_config
from receiver.intake.payload import parse_alert
from tests.procs import Alertmanager, free_port
from tests.support import Backend, alert, live_server

Invoke = Callable[..., Result]
ADMIN = {"Authorization": "Bearer admin-secret-token"}
GROUP = re.compile(r"group ([0-9a-f]{12}): 3 silences")
TRIGGERS = {
    "triggers": [
        {
            "match": {"sloth_severity": "page"},
            "tier": "emergency",
            "service_label": "sloth_service",
        },
        {"match": {"alertname": "ErrorBudgetBurn", "severity": "~crit.*"}, "tier": "critical"},
    ]
}
SLOTH_PAGE = {"alertname": "SLOAvailability", "sloth_severity": "page"}
PYRRA_BURN = {"alertname": "ErrorBudgetBurn", "severity": "critical"}


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    with Alertmanager() as running:
        yield running


@pytest.fixture
def am(alertmanager: Alertmanager) -> Iterator[AlertmanagerClient]:
    with AlertmanagerClient(alertmanager.url) as client:
        yield client


@pytest.fixture
def engine(make_engine: Any, make_settings: Any, alertmanager: Alertmanager) -> Any:
    rules = parse_rollback_config(TRIGGERS, "production", "main").triggers
    settings = replace(make_settings(ALERTMANAGER_URL=alertmanager.url), triggers=rules)
    made = make_engine(settings=settings)
    made.silences = default_silence_check(made.settings)
    return made


@pytest.fixture
def receiver_url(engine: Any) -> Iterator[str]:
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        yield url


@pytest.fixture
def run(alertmanager: Alertmanager, receiver_url: str) -> Invoke:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        merged = {
            "ALERTMANAGER_URL": alertmanager.url,
            "RECEIVER_URL": receiver_url,
            "ADMIN_TOKEN": "admin-secret-token",
            "USER": "alice",
            **(env or {}),
        }
        return CliRunner().invoke(blackout, list(args), env=merged)

    return invoke


def group_ids(am: AlertmanagerClient, group: str) -> list[str]:
    return [s.id for s in am.list_silences(("active",)) if s.comment.endswith(f"group {group}]")]


def test_the_api_names_the_shipped_kind_and_each_triggers_entry(receiver_url: str) -> None:
    answer = requests.get(f"{receiver_url}/api/v1/triggers", headers=ADMIN, timeout=5)
    refused = requests.get(f"{receiver_url}/api/v1/triggers", timeout=5)
    assert answer.status_code == 200 and refused.status_code == 401
    kinds = answer.json()["kinds"]
    assert [(k["name"], k["tier"], k["service_label"]) for k in kinds] == [
        ("shipped", "critical|emergency", "service"),
        ("triggers[0]", "emergency", "sloth_service"),
        ("triggers[1]", "critical", "service"),
    ]
    assert kinds[0]["matchers"] == [Matcher("rollback_tier", "critical|emergency", True).to_api()]
    assert kinds[2]["matchers"] == [
        Matcher("alertname", "ErrorBudgetBurn").to_api(),
        Matcher("severity", "crit.*", is_regex=True).to_api(),
    ]


def test_create_silences_every_kind_for_one_service_and_end_ends_the_group(
    run: Invoke, am: AlertmanagerClient
) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    made = run("create", "--duration", "1h", "--comment", "release", "--service", service)
    assert made.exit_code == 0, made.output
    group = GROUP.search(made.stdout)
    assert group, made.stdout
    ids = group_ids(am, group.group(1))
    assert len(ids) == 3
    # Alertmanager itself now holds back each kind's alerts of that service, and only those.
    assert am.matching_silences({**SLOTH_PAGE, "sloth_service": service})
    assert am.matching_silences({**PYRRA_BURN, "service": service})
    assert am.matching_silences({"rollback_tier": "critical", "service": service})
    assert not am.matching_silences({**SLOTH_PAGE, "sloth_service": "other"})
    assert not am.matching_silences({**SLOTH_PAGE, "sloth_severity": "ticket", "service": service})
    listed = run("list")
    assert listed.exit_code == 0, listed.output
    assert f"group {group.group(1)}  blackout  3 silences" in listed.stdout
    assert all(sid in listed.stdout for sid in ids)
    assert "[blackout group" not in listed.stdout  # the tag is shown as the group, not text
    first = made.stdout.split("created blackout ")[1].split()[0]
    ended = run("end", first)
    assert ended.exit_code == 0, ended.output
    assert "3 silences" in ended.stdout
    assert all(am.get_silence(sid).state == "expired" for sid in ids)
    assert group.group(1) not in run("list").stdout


def test_end_takes_the_group_id(run: Invoke, am: AlertmanagerClient) -> None:
    made = run("create", "--duration", "30m", "--comment", "platform upgrade")
    group = GROUP.search(made.stdout)
    assert made.exit_code == 0 and group, made.output
    assert am.matching_silences({**SLOTH_PAGE, "sloth_service": "any"})
    ended = run("end", group.group(1))
    assert ended.exit_code == 0, ended.output
    assert group_ids(am, group.group(1)) == []
    again = run("end", group.group(1))
    assert again.exit_code == 1 and "no active blackout group" in again.stderr


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"RECEIVER_URL": "http://127.0.0.1:{port}"}, "cannot ask the receiver at"),
        ({"ADMIN_TOKEN": "wrong"}, "401"),
    ],
)
def test_create_fails_with_exit_4_when_it_cannot_ask_the_receiver(
    run: Invoke, am: AlertmanagerClient, env: dict[str, str], said: str
) -> None:
    before = {s.id for s in am.list_silences(("active",))}
    result = run(
        "create",
        "--duration",
        "1h",
        "--comment",
        "x",
        env={k: v.format(port=free_port()) for k, v in env.items()},
    )
    assert result.exit_code == 4, result.output
    assert said in result.stderr and "no blackout created" in result.stderr
    assert "Traceback" not in result.output and "wrong" not in result.output
    assert {s.id for s in am.list_silences(("active",))} == before


def test_a_kind_alertmanager_refuses_leaves_no_half_made_blackout(
    make_engine: Any, make_settings: Any, alertmanager: Alertmanager, am: AlertmanagerClient
) -> None:
    """Alertmanager refuses a silence whose matchers all match the empty string (400)."""
    rules = parse_rollback_config(
        {"triggers": [{"match": {"team": "~.*"}, "tier": "critical"}]}, "production", "main"
    ).triggers
    engine = make_engine(settings=replace(make_settings(), triggers=rules))
    before = {s.id for s in am.list_silences(("active",))}
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        env = {"ALERTMANAGER_URL": alertmanager.url, "RECEIVER_URL": url}
        result = CliRunner().invoke(
            blackout,
            ["create", "--duration", "1h", "--comment", "x"],
            env={**env, "ADMIN_TOKEN": "admin-secret-token"},
        )
    assert result.exit_code == 1, result.output
    assert {s.id for s in am.list_silences(("active",))} == before


def test_the_receiver_recheck_holds_back_a_mapped_alert_under_either_silence(
    engine: Any, am: AlertmanagerClient, backend: Backend
) -> None:
    """A kind's own silence, and the shipped one through the derived rollback_tier."""
    from datetime import timedelta

    sloth = alert("api")
    sloth["labels"] = {**SLOTH_PAGE, "sloth_service": "api"}
    kind_silence = [Matcher("sloth_severity", "page"), Matcher("sloth_service", "api")]
    for matchers in (kind_silence, [Matcher("rollback_tier", "critical|emergency", True)]):
        sid = am.create_silence(
            matchers, duration=timedelta(minutes=5), created_by="t", comment="freeze"
        )
        try:
            outcome = engine.handle_alert(parse_alert(sloth, 0))
        finally:
            am.expire_silence(sid)
        assert (outcome.decision, outcome.reason, outcome.service) == ("skipped", "silenced", "api")
    assert backend.executed() == []
