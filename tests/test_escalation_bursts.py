"""A burst of global_limit skips over one minute: told at once, then one digest of the rest.

The contract ("Notifications"): the `global_limit` skips of one delivery, or of one minute,
are one message naming every service. The first delivery of a burst is told at once and
opens a window in Redis; the escalations of later deliveries are held there and told as one
follow-up digest of the same burst (naming every service so far) by the sweeper of whichever
replica takes the closed window. Real Redis over TCP: the take is what makes it exactly one.
What the channels make of the follow-up is tests/test_burst_follow_up.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from receiver.intake.payload import Alert, parse_message
from receiver.pipeline import Engine
from receiver.state.bursts import Bursts
from receiver.state.store import Store, client_options
from receiver.sweeper import sweep_once
from receiver.tell import base
from receiver.tell.digest import escalation_digest, tell_closed_bursts, tell_escalation
from tests.conftest import REAL_REDIS_URL
from tests.support import Collector, alert, payload
from tests.test_escalation_digest import services_file


def delivery(*services: str) -> list[Alert]:
    return list(parse_message(payload(*[alert(s) for s in services])).alerts)


def escalations(collector: Collector) -> list[base.Event]:
    return [e for e in collector.events if e.kind == base.ESCALATION]


def named(event: base.Event) -> list[str]:
    """The services an escalation tells about: a digest's list, else its own service."""
    return list(event.details.get("services") or [event.service])


def close_burst_windows(store: Store) -> None:
    """The minute passes without sleeping: every window's close time moves into the past."""
    key = store.key("bursts")
    windows = store.client.zrange(key, 0, -1)
    if windows:
        store.client.zadd(key, dict.fromkeys(windows, 0))


@pytest.fixture
def platform(make_engine: Any, real_store: Store, tmp_path: Path) -> Engine:
    """One rollback may run; svc00 takes that slot, so every other service is global_limit."""
    engine: Engine = make_engine(
        store=real_store, ROLLBACK_CONFIG=services_file(tmp_path, 40), MAX_CONCURRENT_ROLLBACKS="1"
    )
    (started,) = engine.handle_delivery(delivery("svc00"))
    assert started.reason == "passed"
    return engine


@pytest.fixture
def dead_redis() -> Iterator[redis_lib.Redis]:
    """A client of a Redis that is not there: connections to a closed port are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = redis_lib.Redis(port=port, **client_options())  # the receiver's own, fail-fast
    yield client
    client.close()


def test_deliveries_within_a_minute_are_told_at_once_then_as_one_digest_naming_the_burst(
    platform: Engine, real_store: Store, collector: Collector
) -> None:
    answers = [platform.handle_delivery(delivery(*d)) for d in (["svc01"], ["svc02"], ["svc03"])]
    answers.append(platform.handle_delivery(delivery("svc04", "svc05")))
    assert {o.reason for outcomes in answers for o in outcomes} == {"global_limit"}
    (first,) = escalations(collector)  # the rest wait in Redis for the window to close
    assert named(first) == ["svc01"] and first.episode  # its own dedup key, as ever
    assert sweep_once(platform)["digests"] == 0  # the window is still open

    close_burst_windows(real_store)
    assert sweep_once(platform)["digests"] == 1
    assert [named(e) for e in escalations(collector)] == [
        ["svc01"],
        ["svc01", "svc02", "svc03", "svc04", "svc05"],
    ]
    follow_up = escalations(collector)[1]
    assert follow_up.details["continues"]["added"] == ["svc02", "svc03", "svc04", "svc05"]
    assert follow_up.details["burst_id"] == first.details["burst_id"] == first.rollback_id
    assert sweep_once(platform)["digests"] == 0 and len(escalations(collector)) == 2
    assert real_store.client.keys(real_store.key("burst*")) == []


def test_two_replicas_sweeping_a_closed_window_at_once_send_exactly_one_digest(
    platform: Engine, make_engine: Any, real_store: Store, collector: Collector
) -> None:
    other_client = redis_lib.Redis.from_url(REAL_REDIS_URL, decode_responses=True)
    other = make_engine(
        store=Store(other_client, prefix=real_store.prefix), settings=platform.settings
    )
    replicas = [platform, other]
    told = []
    for round_ in range(6):
        first, *held = [f"svc{1 + 5 * round_ + n:02d}" for n in range(5)]
        platform.handle_delivery(delivery(first))  # opens this round's window
        for n, service in enumerate(held):
            replicas[n % 2].handle_delivery(delivery(service))
        close_burst_windows(real_store)
        start = threading.Barrier(len(replicas))
        counts: list[int] = []

        def sweep(replica: Engine) -> None:
            start.wait(timeout=10)
            counts.append(sweep_once(replica)["digests"])

        threads = [threading.Thread(target=sweep, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(counts) == [0, 1]
        told.append([first])
        told.append([first, *held])  # the follow-up names the whole burst
    assert [named(e) for e in escalations(collector)] == told
    other_client.close()


def test_escalations_outside_the_window_are_each_told_at_once(
    platform: Engine, real_store: Store, collector: Collector
) -> None:
    platform.bursts.window_seconds = 0  # every window closes as it opens
    for service in ("svc01", "svc02", "svc03"):
        platform.handle_delivery(delivery(service))
    assert [named(e) for e in escalations(collector)] == [["svc01"], ["svc02"], ["svc03"]]
    assert sweep_once(platform)["digests"] == 0  # nothing was held: nothing more to tell
    assert real_store.client.keys(real_store.key("burst*")) == []


def test_a_window_that_closed_lets_the_next_delivery_be_told_at_once(
    platform: Engine, real_store: Store, collector: Collector
) -> None:
    platform.handle_delivery(delivery("svc01"))
    platform.handle_delivery(delivery("svc02"))  # held
    close_burst_windows(real_store)
    platform.handle_delivery(delivery("svc03"))  # a new burst, before any sweep
    assert [named(e) for e in escalations(collector)] == [["svc01"], ["svc03"]]
    assert sweep_once(platform)["digests"] == 1  # svc02's window; svc03's is still open
    assert [named(e) for e in escalations(collector)] == [
        ["svc01"],
        ["svc03"],
        ["svc01", "svc02"],  # svc02 continues svc01's burst, not svc03's
    ]


def test_when_redis_cannot_hold_an_escalation_it_is_told_at_once(
    platform: Engine, real_store: Store, collector: Collector, dead_redis: redis_lib.Redis
) -> None:
    platform.handle_delivery(delivery("svc01"))  # the window is open
    platform.bursts = Bursts(Store(dead_redis, prefix=real_store.prefix))
    platform.handle_delivery(delivery("svc02", "svc03"))
    assert [named(e) for e in escalations(collector)] == [["svc01"], ["svc02", "svc03"]]


def test_an_escalation_already_told_this_episode_is_not_held_for_the_digest(
    real_store: Store, collector: Collector
) -> None:
    def escalation(service: str) -> base.Event:
        return base.Event(
            kind=base.ESCALATION,
            service=service,
            namespace="production",
            tier="emergency",
            reason="global_limit",
            rollback_id=f"rb-{service}",
            episode=f"fp-{service}:2026-11-26T10:00:00Z:emergency",
        )

    bursts = Bursts(real_store)
    with escalation_digest(collector, real_store.claim_once, bursts):
        tell_escalation(collector, escalation("search"))  # told at once, claimed
    with escalation_digest(collector, real_store.claim_once, bursts):
        tell_escalation(collector, escalation("cart"))
        tell_escalation(collector, escalation("search"))  # Alertmanager's repeat: quiet
    close_burst_windows(real_store)
    assert tell_closed_bursts(bursts, collector) == 1
    told, follow_up = collector.events
    assert told.service == "search" and told.once_claimed  # Notifications claims no second time
    assert follow_up.details["continues"]["added"] == ["cart"]
    assert real_store.claim_once(base.once_key(follow_up), 60)  # its own episode: not quiet


def test_concurrent_takes_of_closed_windows_give_each_window_to_one_taker(
    real_store: Store,
) -> None:
    clients = [redis_lib.Redis.from_url(REAL_REDIS_URL, decode_responses=True) for _ in range(4)]
    takers = [Bursts(Store(c, prefix=real_store.prefix)) for c in clients]
    windows = {}
    for n in range(30):
        takers[0].hold([f"opener-{n}"], first=f"first-{n}")  # opens window n
        takers[0].hold([f"held-{n}-a", f"held-{n}-b"], first="not stored: a window is open")
        windows[n] = [f"first-{n}", f"held-{n}-a", f"held-{n}-b"]
        close_burst_windows(real_store)
    start = threading.Barrier(len(takers))
    taken: list[list[str]] = []

    def take_all(bursts: Bursts) -> None:
        start.wait(timeout=10)
        for window in bursts.closed():
            items = bursts.take(window)
            if items.held:
                taken.append([str(items.first), *items.held])

    threads = [threading.Thread(target=take_all, args=(b,)) for b in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(taken) == sorted(windows.values())
    for client in clients:
        client.close()
