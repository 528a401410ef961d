"""Notifications: fan-out off the caller's thread, failures counted, once per episode."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from receiver.config import Settings
from receiver.tell import base
from receiver.tell.notify import Notifications, build_notifiers
from receiver.tell.pagerduty import PagerDutyNotifier
from receiver.tell.slack import SlackNotifier
from tests.fakes_notify import PagerDutySink, SlackSink
from tests.support import sample

KEY = "R0UT1NGK3Y0123456789abcdefABCDEF"


def event(kind: str = base.STARTED, **overrides: Any) -> base.Event:
    fields: dict[str, Any] = dict(
        kind=kind,
        service="checkout",
        namespace="production",
        tier="emergency",
        reason="passed",
        rollback_id="rb-9",
        episode="fp:2026-11-26T10:00:00Z:emergency",
    )
    fields.update(overrides)
    return base.Event(**fields)


def failures(channel: str) -> float:
    return sample("rollback_notification_failures_total", channel=channel)


class Recording(base.Notifier):
    """A channel that records what it was asked to send, optionally slowly or failing."""

    channel: ClassVar[str] = "slack"

    def __init__(
        self, fail: Exception | None = None, delay: float = 0.0, kinds: tuple[str, ...] = base.KINDS
    ) -> None:
        self.sent: list[base.Event] = []
        self.fail = fail
        self.delay = delay
        self.kinds = kinds
        self.release = threading.Event()

    def wants(self, event: base.Event) -> bool:
        return event.kind in self.kinds

    def send(self, event: base.Event) -> None:
        if self.delay:
            self.release.wait(self.delay)
        self.sent.append(event)
        if self.fail is not None:
            raise self.fail


class Once:
    """What the store provides: SET NX EX, in memory."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}

    def __call__(self, key: str, ttl: int) -> bool:
        if key in self.keys:
            return False
        self.keys[key] = ttl
        return True


@pytest.fixture
def closing() -> Iterator[list[Notifications]]:
    made: list[Notifications] = []
    yield made
    for notifications in made:
        notifications.close(timeout=5)


def test_notify_returns_at_once_while_a_channel_is_slow(closing: list[Notifications]) -> None:
    slow = Recording(delay=5.0)
    notifications = Notifications([slow])
    closing.append(notifications)
    started = time.monotonic()
    notifications.notify(event())
    assert time.monotonic() - started < 0.5
    assert slow.sent == []
    slow.release.set()
    assert notifications.flush(5)
    assert [e.kind for e in slow.sent] == [base.STARTED]


def test_a_failing_channel_is_counted_and_logged_and_the_others_still_get_it(
    closing: list[Notifications], caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Recording):
        channel: ClassVar[str] = "pagerduty"

    broken = Broken(fail=base.NotificationError("pagerduty: 400 Event object is invalid"))
    fine = Recording()
    notifications = Notifications([broken, fine])
    closing.append(notifications)
    before = failures("pagerduty"), failures("slack")
    with caplog.at_level(logging.WARNING, logger="receiver.notify"):
        notifications.notify(event())
        assert notifications.flush(5)
    assert failures("pagerduty") == before[0] + 1
    assert failures("slack") == before[1]
    assert len(fine.sent) == 1
    assert "notification to pagerduty failed" in caplog.text
    assert "Event object is invalid" in caplog.text


def test_an_unexpected_exception_in_a_channel_is_only_a_counted_failure(
    closing: list[Notifications], caplog: pytest.LogCaptureFixture
) -> None:
    notifications = Notifications([Recording(fail=RuntimeError("https://hooks/secret"))])
    closing.append(notifications)
    before = failures("slack")
    with caplog.at_level(logging.WARNING, logger="receiver.notify"):
        notifications.notify(event())
        assert notifications.flush(5)
    assert failures("slack") == before + 1
    assert "unexpected RuntimeError" in caplog.text
    assert "hooks/secret" not in caplog.text


def test_a_channel_only_gets_the_kinds_it_wants(closing: list[Notifications]) -> None:
    picky = Recording(kinds=(base.FAILED,))
    notifications = Notifications([picky])
    closing.append(notifications)
    for kind in (base.STARTED, base.FAILED, base.COMPLETED):
        notifications.notify(event(kind))
    assert notifications.flush(5)
    assert [e.kind for e in picky.sent] == [base.FAILED]


@pytest.mark.parametrize("kind", [base.ESCALATION, base.BLOCKED_EMERGENCY])
def test_escalations_are_told_once_per_episode_not_per_repeat(
    closing: list[Notifications], kind: str
) -> None:
    channel, once = Recording(), Once()
    notifications = Notifications([channel], once=once, once_ttl_seconds=3600)
    closing.append(notifications)
    for _ in range(3):
        notifications.notify(event(kind, reason="cooldown"))
    notifications.notify(event(kind, reason="cooldown", episode="fp:2026-11-26T11:00:00Z:x"))
    assert notifications.flush(5)
    assert len(channel.sent) == 2
    assert once.keys == {
        f"notified:{kind}:checkout:fp:2026-11-26T10:00:00Z:emergency": 3600,
        f"notified:{kind}:checkout:fp:2026-11-26T11:00:00Z:x": 3600,
    }


def test_an_escalation_whose_episode_the_digest_claimed_is_sent_without_a_second_claim(
    closing: list[Notifications],
) -> None:
    channel, once = Recording(), Once()
    once(f"notified:{base.ESCALATION}:checkout:fp:2026-11-26T10:00:00Z:emergency", 60)
    notifications = Notifications([channel], once=once)
    closing.append(notifications)
    notifications.notify(event(base.ESCALATION, reason="global_limit", once_claimed=True))
    notifications.notify(event(base.ESCALATION, reason="global_limit"))  # a repeat: quiet
    assert notifications.flush(5)
    assert len(channel.sent) == 1 and channel.sent[0].episode  # the dedup key keeps it


def test_rollback_events_are_never_deduplicated_by_episode(
    closing: list[Notifications],
) -> None:
    channel, once = Recording(), Once()
    notifications = Notifications([channel], once=once)
    closing.append(notifications)
    notifications.notify(event(base.STARTED))
    notifications.notify(event(base.COMPLETED))
    assert notifications.flush(5)
    assert len(channel.sent) == 2 and once.keys == {}


def test_when_the_store_cannot_say_an_escalation_is_told_anyway(
    closing: list[Notifications],
) -> None:
    def broken_once(key: str, ttl: int) -> bool:
        raise ConnectionError("redis down")

    channel = Recording()
    notifications = Notifications([channel], once=broken_once)
    closing.append(notifications)
    notifications.notify(event(base.ESCALATION))
    assert notifications.flush(5)
    assert len(channel.sent) == 1


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    closing: list[Notifications],
) -> None:
    slow = Recording(delay=5.0)
    notifications = Notifications([slow], max_workers=1, max_queued=2)
    closing.append(notifications)
    before = failures("slack")
    started = time.monotonic()
    for _ in range(5):
        notifications.notify(event())
    assert time.monotonic() - started < 0.5
    assert failures("slack") == before + 3
    slow.release.set()
    assert notifications.flush(5)
    assert len(slow.sent) == 2


def test_flush_reports_sends_that_did_not_finish_in_time(
    closing: list[Notifications],
) -> None:
    slow = Recording(delay=5.0)
    notifications = Notifications([slow])
    closing.append(notifications)
    notifications.notify(event())
    assert notifications.flush(0.05) is False
    slow.release.set()
    assert notifications.flush(5) is True


def test_after_close_events_are_counted_as_failures_not_raised() -> None:
    channel = Recording()
    notifications = Notifications([channel])
    notifications.close(timeout=5)
    before = failures("slack")
    notifications.notify(event())
    assert failures("slack") == before + 1 and channel.sent == []


def test_build_notifiers_makes_one_per_configured_channel() -> None:
    assert build_notifiers(Settings.from_env({})) == []
    settings = Settings.from_env(
        {"SLACK_WEBHOOK": "https://hooks.slack.com/services/T/B/x", "PAGERDUTY_KEY": KEY}
    )
    notifiers = build_notifiers(settings)
    assert [type(n) for n in notifiers] == [SlackNotifier, PagerDutyNotifier]
    assert notifiers[1].url == "https://events.pagerduty.com/v2/enqueue"
    for notifier in notifiers:
        notifier.close()  # type: ignore[attr-defined]


def test_end_to_end_slack_and_pagerduty_each_get_a_rollback_start() -> None:
    with SlackSink() as slack_sink, PagerDutySink() as pd_sink:
        settings = Settings.from_env(
            {"SLACK_WEBHOOK": slack_sink.url, "PAGERDUTY_KEY": KEY, "PAGERDUTY_URL": pd_sink.url}
        )
        notifications = Notifications(build_notifiers(settings))
        notifications.notify(event(base.STARTED))
        assert notifications.flush(10)
        notifications.close()
        assert len(slack_sink.messages) == 1
        assert [
            (e["event_action"], e["dedup_key"], e["payload"]["severity"]) for e in pd_sink.events
        ] == [("trigger", "rb-9", "critical")]
