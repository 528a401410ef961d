"""The status page reads every service's state in a few Redis round trips, whatever their count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.config import Settings
from receiver.pipeline import Engine
from receiver.state.history import State
from receiver.state.overview import RAN_STATES, STATUS_SCAN
from receiver.state.store import Store
from tests.redis_support import RoundTrips, add_record


def config_of(tmp_path: Path, count: int) -> str:
    path = tmp_path / f"services-{count}.yml"
    path.write_text(
        "services:\n"
        + "".join(
            f"  s{n:03d}: {{gitops: {{repo: acme/gitops, path: k8s/s{n:03d}}}, "
            f"argocd: {{app: app-s{n:03d}}}}}\n"
            for n in range(count)
        )
    )
    return str(path)


def seed(store: Store, services: list[str]) -> None:
    """A few records of every state for each service, a start, a lock and an auto-sync entry."""
    states = list(State)
    for n, service in enumerate(services):
        for k in range(n % 7):
            add_record(store, service, states[(n + k) % len(states)])
    now_ms = int(store.now() * 1000)
    store.client.zadd(store.key("starts", services[0]), {"rb-a": now_ms - 60_000})
    store.client.set(store.key("lock", services[0]), "rb-a", px=60_000)
    store.client.hset(store.key("autosync_disabled"), "app-s001", '{"since": 1.5}')


def test_a_status_page_costs_the_same_few_round_trips_for_3_services_as_for_60(
    real_store: Store,
    make_engine: Callable[..., Engine],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trips = RoundTrips(monkeypatch)
    counts = {}
    for count in (3, 60):
        engine = make_engine(
            store=real_store, settings=make_settings(ROLLBACK_CONFIG=config_of(tmp_path, count))
        )
        seed(real_store, [f"s{n:03d}" for n in range(count)])
        engine.statuses()  # the first registers the script on the server
        trips.count = 0
        page = {status["service"]: status for status in engine.statuses()}
        counts[count] = trips.count
        assert len(page) == count + 1  # and SERVICE_NAME's
        assert page["s000"]["locked_by"] == "rb-a" and page["s000"]["rollbacks_last_hour"] == 1
        assert page["s001"]["argocd_autosync_disabled"]["app"] == "app-s001"
    assert counts[3] == counts[60] <= 4, counts


@pytest.fixture(params=["embedded", "redis"])
def any_store(request: pytest.FixtureRequest) -> Store:
    """The embedded store (fakeredis, Lua included) and the machine's Redis."""
    name = "fake_store" if request.param == "embedded" else "real_store"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def newest(store: Store, service: str, wanted: Callable[[str], bool]) -> dict[str, Any] | None:
    """The newest record in `wanted` state, found by reading the history a record at a time."""
    found = next((r for r in store.list_records(service, STATUS_SCAN) if wanted(r.state)), None)
    return found.to_dict() if found else None


def test_the_last_rollback_and_skip_are_those_the_history_shows_record_by_record(
    any_store: Store,
    make_engine: Callable[..., Engine],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    store = any_store
    engine = make_engine(
        store=store, settings=make_settings(ROLLBACK_CONFIG=config_of(tmp_path, 6))
    )
    services = [f"s{n:03d}" for n in range(6)]
    seed(store, services)
    # s002: a skip without a record-state key (its own `state` counts), a skip whose key
    # says it failed since, and an index entry whose record aged out
    older = add_record(store, "s002", State.SKIPPED)
    store.client.delete(store.key("rstate", older.id))
    overridden = add_record(store, "s002", State.SKIPPED)
    store.client.set(store.key("rstate", overridden.id), State.FAILED)
    gone = add_record(store, "s002", State.COMPLETED)
    store.client.delete(store.key("record", gone.id))
    # s003: its only skip is older than the records the status scans
    add_record(store, "s003", State.SKIPPED)
    for _ in range(STATUS_SCAN):
        add_record(store, "s003", State.PENDING_APPROVAL)
    page = {status["service"]: status for status in engine.statuses()}
    for service in services:
        assert page[service]["last_rollback"] == newest(store, service, RAN_STATES.__contains__)
        assert page[service]["last_skip"] == newest(store, service, State.SKIPPED.__eq__)
    assert page["s002"]["last_rollback"]["id"] == overridden.id
    assert page["s002"]["last_rollback"]["state"] == State.FAILED
    assert page["s002"]["last_skip"]["id"] == older.id
    assert page["s003"]["last_skip"] is None
    assert engine.status("s002") == page["s002"]
