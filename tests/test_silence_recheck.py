"""Just before acting, the receiver asks the real Alertmanager whether the alert is now silenced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from receiver.app import default_silence_check
from receiver.clients.alertmanager import AlertmanagerClient, Matcher, blackout_matchers
from receiver.intake.payload import parse_alert
from tests.procs import Alertmanager
from tests.support import Backend, alert


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    am = Alertmanager().start()
    yield am
    am.stop()


def engine_for(make_engine: Any, url: str) -> Any:
    settings_env = {"ALERTMANAGER_URL": url}
    engine = make_engine(**settings_env)
    engine.silences = default_silence_check(engine.settings)
    return engine


def test_a_silence_made_after_the_delivery_left_blocks_the_rollback(
    make_engine: Any, alertmanager: Alertmanager, backend: Backend
) -> None:
    engine = engine_for(make_engine, alertmanager.url)
    with AlertmanagerClient(alertmanager.url) as client:
        sid = client.create_silence(
            blackout_matchers("api"),
            created_by="oncall",
            comment="release freeze",
            duration=timedelta(minutes=5),
        )
        try:
            blocked = engine.handle_alert(parse_alert(alert("api"), 0))
            other = engine.handle_alert(parse_alert(alert("web"), 0))
            status = engine.status("api")["blackout"]["silence"]
        finally:
            client.expire_silence(sid)
    assert (blocked.decision, blocked.reason) == ("skipped", "silenced")
    detail = engine.store.get_record(blocked.rollback_id).checks[-1]["detail"]
    assert sid in detail and "oncall" in detail and "release freeze" in detail
    assert status is not None and sid in status  # /api/v1/status shows it too
    assert other.reason == "no_target"  # web is not configured; the silence was api's only
    assert backend.executed() == []


def test_a_freeze_silence_is_scoped_by_its_other_matchers(
    make_engine: Any, alertmanager: Alertmanager, backend: Backend
) -> None:
    engine = engine_for(make_engine, alertmanager.url)
    freeze = [Matcher("rollback_freeze", "true"), Matcher("namespace", "production")]
    with AlertmanagerClient(alertmanager.url) as client:
        sid = client.create_silence(
            freeze, created_by="release-bot", comment="code freeze", duration=timedelta(minutes=5)
        )
        try:
            frozen = engine.handle_alert(parse_alert(alert("api"), 0))
        finally:
            client.expire_silence(sid)
        after = engine.handle_alert(parse_alert(alert("api", starts_at="2026-11-26T13:00:00Z"), 0))
    assert frozen.reason == "silenced"
    assert after.decision == "rollback"  # the freeze ended: the next episode proceeds
    assert engine.wait_idle(10)
    assert backend.executed() == [after.rollback_id]


def test_an_unreachable_alertmanager_does_not_block_the_rollback(
    make_engine: Any, backend: Backend
) -> None:
    engine = engine_for(make_engine, "http://127.0.0.1:9")
    outcome = engine.handle_alert(parse_alert(alert("api"), 0))
    assert outcome.decision == "rollback"
    assert engine.wait_idle(10)
    assert backend.executed() == [outcome.rollback_id]
