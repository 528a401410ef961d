"""Issue 10 item 4: a Redis stall or data loss right after the reservation loses no trigger."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.errors import StoreUnavailable
from receiver.pipeline import Engine, Outcome
from receiver.state.history import FINAL_STATES
from receiver.state.store import Store
from receiver.sweeper import sweep_once
from tests.chaos.redis_proc import RedisProcess
from tests.chaos.support import fire, write_config
from tests.support import Collector

STALL_SECONDS = 6.0  # longer than the client's timeout and its one retry (store.py)


@pytest.fixture
def proc_stores() -> Iterator[list[Store]]:
    """Stores on the throwaway Redis, their connections closed at the end."""
    stores: list[Store] = []
    yield stores
    for store in stores:
        store.client.connection_pool.disconnect()
        store.client.close()


def _web_store(
    make_settings: Any, url: str, tmp_path: Path, proc_stores: list[Store], **env: str
) -> tuple[Any, Store]:
    """Settings of one service `web` on the Redis at `url`, and a store on it."""
    config = write_config(tmp_path / "services.yaml", {"web": {"path": "k8s/web"}})
    settings = make_settings(REDIS_URL=url, ROLLBACK_CONFIG=config, **env)
    store = Store.from_settings(settings)
    proc_stores.append(store)
    return settings, store


def _after_first_reservation(store: Store, fault: Callable[[], None]) -> None:
    """Run `fault` (a stall, a stop, a restart) right after the store's first reservation."""
    original = store.reserve

    def reserve_then_fault(**kwargs: Any) -> Any:
        result = original(**kwargs)
        store.reserve = original  # type: ignore[method-assign]  # one fault only
        fault()
        return result

    store.reserve = reserve_then_fault  # type: ignore[method-assign]


@pytest.fixture
def stalled_engine(
    make_engine: Any,
    make_settings: Any,
    redis_proc: RedisProcess,
    tmp_path: Path,
    proc_stores: list[Store],
) -> Iterator[Callable[..., Engine]]:
    """An engine on the throwaway Redis whose first reservation is followed by a stall."""
    engines: list[Engine] = []

    def stall() -> None:
        redis_proc.pause()
        threading.Timer(STALL_SECONDS, redis_proc.resume).start()

    def build(**env: str) -> Engine:
        settings, store = _web_store(
            make_settings, redis_proc.url, tmp_path, proc_stores, LOCK_LEASE_SECONDS="3", **env
        )
        _after_first_reservation(store, stall)
        engine: Engine = make_engine(store=store, settings=settings)
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.shutdown(5)


def _deliver(engine: Engine) -> Outcome | None:
    """One delivery of the trigger; None stands for the 503 Alertmanager retries on."""
    try:
        return fire(engine, "web")
    except StoreUnavailable:
        return None


def _settle(engine: Engine, rollback_id: str) -> str:
    """Run sweeps (bounded) until the rollback's record reached a final state."""
    deadline = time.monotonic() + 30
    state = ""
    while time.monotonic() < deadline:
        engine.wait_idle(1)
        try:
            sweep_once(engine)
            state = engine.store.record_state(rollback_id) or ""
        except StoreUnavailable:
            continue
        if state in FINAL_STATES:
            break
        time.sleep(0.25)
    return state


def test_a_stall_after_the_reservation_never_leaves_a_duplicate_pointing_at_nothing(
    stalled_engine: Any, redis_proc: RedisProcess, collector: Collector
) -> None:
    engine = stalled_engine(COOLDOWN_MINUTES="0")
    first = _deliver(engine)
    time.sleep(STALL_SECONDS + 0.5)  # Alertmanager retries after the stall
    retry = _deliver(engine)
    assert retry is not None
    rollback_id = retry.rollback_id or ""
    assert engine.store.get_record(rollback_id) is not None, (first, retry)
    if first is not None:
        assert retry.reason == "duplicate" and rollback_id == first.rollback_id
    state = _settle(engine, rollback_id)
    assert state in FINAL_STATES
    if state == "interrupted":
        assert "interrupted" in collector.kinds()  # a human is told


def test_a_stall_after_an_approval_hold_keeps_the_pending_record_and_its_expiry(
    stalled_engine: Any, collector: Collector
) -> None:
    engine = stalled_engine(REQUIRE_APPROVAL="true")
    first = _deliver(engine)
    time.sleep(STALL_SECONDS + 0.5)
    retry = _deliver(engine)
    assert retry is not None
    held_id = (first or retry).rollback_id or ""
    record = engine.store.get_record(held_id)
    assert record is not None and record.state == "pending_approval" and record.expires_at
    assert engine.store.client.zscore(engine.store.key("pending"), held_id) is not None


def test_an_episode_whose_record_is_gone_is_decided_afresh(
    make_engine: Any, real_store: Store, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "services.yaml", {"web": {"path": "k8s/web"}})
    engine = make_engine(store=real_store, ROLLBACK_CONFIG=config, COOLDOWN_MINUTES="0")
    first = fire(engine, "web")
    assert first.reason == "passed" and engine.wait_idle(10)
    real_store.client.delete(real_store.key("record", first.rollback_id or ""))
    again = fire(engine, "web")  # the same episode: its claim points at nothing
    assert again.reason != "duplicate"
    assert real_store.get_record(again.rollback_id or "") is not None


def test_redis_restarted_empty_after_the_reservation_lets_the_retry_start_it(
    make_engine: Any,
    make_settings: Any,
    redis_proc: RedisProcess,
    tmp_path: Path,
    proc_stores: list[Store],
) -> None:
    settings, store = _web_store(make_settings, redis_proc.url, tmp_path, proc_stores)
    _after_first_reservation(store, redis_proc.restart)
    engine = make_engine(store=store, settings=settings)
    _deliver(engine)
    engine.wait_idle(10)
    retry = _deliver(engine)
    assert retry is not None and retry.reason == "passed"
    assert engine.wait_idle(10)
    assert store.record_state(retry.rollback_id or "") in FINAL_STATES
    engine.shutdown(5)


def test_redis_down_right_after_the_reservation_keeps_the_record_with_the_claim(
    make_engine: Any,
    make_settings: Any,
    persistent_redis_proc: RedisProcess,
    tmp_path: Path,
    proc_stores: list[Store],
) -> None:
    """A crash with an append-only file: whatever survives, the claim and its record go together."""
    server = persistent_redis_proc
    # The start after the reservation fails, so the claim's lock lives out its lease before
    # the reaper may interrupt it: a short lease keeps the settle well inside its deadline.
    settings, store = _web_store(
        make_settings, server.url, tmp_path, proc_stores, LOCK_LEASE_SECONDS="3"
    )
    _after_first_reservation(store, server.stop)
    engine = make_engine(store=store, settings=settings)
    _deliver(engine)
    server.start()
    retry = _deliver(engine)
    assert retry is not None
    assert store.get_record(retry.rollback_id or "") is not None, retry
    state = _settle(engine, retry.rollback_id or "")
    assert state in FINAL_STATES
    engine.shutdown(5)
