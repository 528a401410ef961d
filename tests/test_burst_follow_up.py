"""A burst's follow-up digest is part of the same burst on every channel that can merge.

The first escalations of a burst are told at once; what later deliveries add within the
minute is told by the sweeper as one follow-up (tests/test_escalation_bursts.py). Here the
follow-up goes through the real channels, against the fakes of Slack, PagerDuty (Events API
v2), GitHub issues and an incident bridge, with the window in the machine's real Redis:

- PagerDuty: both events carry ONE dedup_key, so PagerDuty adds the follow-up to the alert
  that is open (API-FACTS E.2) instead of opening a second incident;
- GitHub: one issue, and one comment on it naming the services the follow-up adds;
- Slack: an incoming webhook cannot edit or thread (it answers `ok`, no message ts), so the
  follow-up is a second message that says which burst it continues and names all of it;
- INCIDENT_WEBHOOK: the same `burst_id` in both records.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from receiver.pipeline import Engine
from receiver.state.bursts import Bursts
from receiver.state.store import Store
from receiver.sweeper import sweep_once
from receiver.tell import base
from receiver.tell.digest import BurstFirst, tell_closed_bursts
from receiver.tell.incident import IncidentNotifier
from receiver.tell.incident_webhook import IncidentWebhookNotifier
from receiver.tell.notify import Notifications
from receiver.tell.pagerduty import PagerDutyNotifier
from receiver.tell.slack import SlackNotifier
from tests.conftest import REAL_REDIS_URL
from tests.fakes import BareRepo
from tests.fakes.github_api import FakeGitHub
from tests.fakes_notify import PagerDutySink, SlackSink
from tests.support import Collector
from tests.test_escalation_bursts import close_burst_windows, delivery, named, platform
from tests.test_incident import REPO, TOKEN, Fixed, IncidentBridge
from tests.test_incident import event as incident_event

__all__ = ["platform"]  # the fixture: one rollback runs, every other service is global_limit

ROUTING_KEY = "R0UT1NGK3Y0123456789abcdefABCDEF"
FIRST_REPORTED = re.compile(r"first reported at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


class Channels:
    """The four channels, each on its fake, told through one `Notifications`."""

    def __init__(self, tmp_path: Path, store: Store) -> None:
        self.slack, self.pagerduty, self.bridge = SlackSink(), PagerDutySink(), IncidentBridge()
        self.github = FakeGitHub(BareRepo.create(tmp_path / "incidents.git"), REPO, TOKEN)
        for fake in (self.slack, self.pagerduty, self.bridge, self.github):
            fake.start()
        no_wait: Any = lambda seconds: None  # noqa: E731
        self.notifications = Notifications(
            [
                SlackNotifier(self.slack.url, sleep=no_wait),
                PagerDutyNotifier(ROUTING_KEY, url=self.pagerduty.url, sleep=no_wait),
                IncidentNotifier(
                    REPO,
                    Fixed(TOKEN),
                    api_url=self.github.base_url,
                    claim=store.claim_once,
                    sleep=no_wait,
                    write_pause=0,
                ),
                IncidentWebhookNotifier(Fixed(self.bridge.base_url + "/hook"), sleep=no_wait),
            ],
            once=store.claim_once,
        )

    def tell(self, event: base.Event) -> None:
        self.notifications.notify(event)

    def settle(self) -> None:
        assert self.notifications.flush(20), "notifications still queued"

    def stop(self) -> None:
        self.notifications.close(5)
        for fake in (self.slack, self.pagerduty, self.bridge, self.github):
            fake.stop()

    def escalation_records(self) -> list[dict[str, Any]]:
        return [r.json["record"] for r in self.bridge.received if r.json["type"] == "escalated"]


@pytest.fixture
def channels(tmp_path: Path, real_store: Store) -> Iterator[Channels]:
    running = Channels(tmp_path, real_store)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def told(platform: Engine, channels: Channels) -> Engine:
    """The platform's escalations (and its sweeps) go to the channels from now on."""
    platform.tell = channels.tell
    return platform


def global_limit(service: str, tier: str = "critical") -> base.Event:
    """A `global_limit` escalation as a delivery holds it for the window (claimed as told)."""
    return incident_event(
        base.ESCALATION,
        service=service,
        tier=tier,
        reason="global_limit",
        rollback_id=f"rb-{service}",
        episode=f"fp-{service}:2026-11-26T10:00:30Z:{tier}",
        once_claimed=True,
    )


def now_to_the_second() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_a_burst_over_two_deliveries_is_one_pagerduty_alert_one_issue_and_a_slack_follow_up(
    told: Engine, channels: Channels, real_store: Store
) -> None:
    before = now_to_the_second()
    told.handle_delivery(delivery("svc01"))  # told at once: opens the window
    after = now_to_the_second()
    told.handle_delivery(delivery("svc02", "svc03"))  # held in Redis for the follow-up
    channels.settle()
    assert len(channels.pagerduty.events) == 1 and len(channels.slack.messages) == 1
    close_burst_windows(real_store)
    assert sweep_once(told)["digests"] == 1
    channels.settle()

    first, follow_up = channels.pagerduty.events
    assert first["dedup_key"] == follow_up["dedup_key"]  # one alert, updated
    assert first["dedup_key"].startswith("svc01:")  # the first's own `service:episode`
    assert [first["event_action"], follow_up["event_action"]] == ["trigger", "trigger"]
    details = follow_up["payload"]["custom_details"]
    assert details["services"] == ["svc01", "svc02", "svc03"]
    assert details["burst_added"] == ["svc02", "svc03"]

    [issue] = channels.github.issues  # no second issue for the follow-up
    assert issue["title"].startswith("Rollback of svc01: ")
    [comment] = issue["comment_list"]
    assert "added (2): `svc02`, `svc03`" in comment
    assert "services so far (3): `svc01`, `svc02`, `svc03`" in comment
    assert {"service:svc01", "service:svc02", "service:svc03"} <= set(issue["labels"])

    opening, more = channels.slack.messages
    assert "first reported" not in str(opening)
    text = str(more)
    when = FIRST_REPORTED.search(more["text"])
    assert when is not None, more["text"]
    reported = datetime.strptime(when.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert before <= reported <= after  # the time the first message went out
    assert f"*Continues the burst first reported at {when.group(1)} UTC* (svc01)" in text
    assert "Services so far (3):* svc01, svc02, svc03" in text
    assert "Added since (2):* svc02, svc03" in text

    records = channels.escalation_records()
    assert len(records) == 2
    assert records[0]["burst_id"] == records[1]["burst_id"]
    assert records[1]["burst_added"] == ["svc02", "svc03"]
    assert "burst_added" not in records[0]


def test_a_burst_that_opened_with_a_digest_adds_its_follow_up_to_the_digests_alert_and_issue(
    told: Engine, channels: Channels, real_store: Store
) -> None:
    told.handle_delivery(delivery("svc01", "svc02"))  # one delivery: a digest, told at once
    told.handle_delivery(delivery("svc03"))
    told.handle_delivery(delivery("svc04"))
    close_burst_windows(real_store)
    assert sweep_once(told)["digests"] == 1
    channels.settle()

    keys = {event["dedup_key"] for event in channels.pagerduty.events}
    assert len(channels.pagerduty.events) == 2 and len(keys) == 1
    assert keys.pop().startswith("2 services:burst:")  # the digest's key, kept
    [issue] = channels.github.issues
    assert issue["title"].startswith("Rollback of 2 services: ")
    [comment] = issue["comment_list"]
    assert "added (2): `svc03`, `svc04`" in comment
    assert {r["burst_id"] for r in channels.escalation_records()} == {
        channels.escalation_records()[0]["burst_id"]
    }
    assert "Services so far (4)" in str(channels.slack.messages[1])


def test_a_follow_up_whose_first_issue_is_missing_opens_one_naming_the_whole_burst(
    channels: Channels, real_store: Store
) -> None:
    """GitHub was down when the first escalation was told: the follow-up opens the issue."""
    first = BurstFirst(
        burst_id="rb-first",
        at="2026-11-26T10:00:03+00:00",
        services=["search"],
        tier="critical",
        dedup_key="search:fp:2026-11-26T10:00:00Z:critical",
        incident_key="escalation:search:fp",
    )
    bursts = Bursts(real_store)
    bursts.hold([], first.to_json())  # opens the window with the first event's keys
    assert bursts.hold([global_limit("cart", "emergency").to_json()])
    close_burst_windows(real_store)
    assert tell_closed_bursts(bursts, channels.tell) == 1
    channels.settle()

    [issue] = channels.github.issues
    assert "<!-- rollback-receiver:incident escalation:search:fp -->" in issue["body"]
    assert "Services: `cart`, `search`" in issue["body"]
    assert issue["labels"] == ["rollback", "service:cart", "service:search"]
    assert issue["comment_list"] == []  # its body already names every service so far
    [event] = channels.pagerduty.events
    assert event["dedup_key"] == first.dedup_key
    assert event["payload"]["severity"] == "critical"  # the burst holds an emergency now
    assert "2026-11-26 10:00:03 UTC" in channels.slack.messages[0]["text"]


def test_a_window_opened_without_a_first_tells_what_it_held_as_a_burst_of_its_own(
    real_store: Store, collector: Collector
) -> None:
    """A window an older replica opened (rolling deploy) remembers no first event."""
    bursts = Bursts(real_store)
    bursts.hold([])  # opened with nothing remembered
    assert bursts.hold([global_limit(s).to_json() for s in ("cart", "search")])
    close_burst_windows(real_store)
    assert tell_closed_bursts(bursts, collector) == 1
    [digest] = collector.events
    assert named(digest) == ["cart", "search"] and "continues" not in digest.details
    assert digest.details["burst_id"] == "rb-cart"


def test_of_replicas_opening_a_window_at_once_one_opens_it_and_its_first_is_the_one_kept(
    real_store: Store,
) -> None:
    clients = [redis_lib.Redis.from_url(REAL_REDIS_URL, decode_responses=True) for _ in range(6)]
    replicas = [Bursts(Store(c, prefix=real_store.prefix)) for c in clients]
    start = threading.Barrier(len(replicas))
    held: dict[int, bool] = {}

    def hold(n: int) -> None:
        start.wait(timeout=10)
        held[n] = replicas[n].hold([f"escalation-{n}"], f"first-{n}")

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    [opener] = [n for n, was_held in held.items() if not was_held]
    close_burst_windows(real_store)
    [window] = replicas[0].closed()
    taken = replicas[0].take(window)
    assert taken.first == f"first-{opener}"
    assert sorted(taken.held) == sorted(f"escalation-{n}" for n in held if n != opener)
    assert real_store.client.keys(real_store.key("burst*")) == []
    for client in clients:
        client.close()
