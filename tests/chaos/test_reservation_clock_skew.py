"""Issue 10 item 7: two replicas whose clocks differ by 10 minutes agree, on Redis's clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from receiver.pipeline import Engine
from receiver.state.store import Store
from receiver.sweeper import sweep_once
from tests.chaos.support import fire, write_config
from tests.support import Backend

SKEW = 600.0  # seconds: one replica's clock is ten minutes off
SERVICES = {f"s{i}": {"path": f"k8s/s{i}"} for i in range(5)}
Skewed = Callable[[float], Any]


@pytest.fixture
def skewed(monkeypatch: pytest.MonkeyPatch) -> Skewed:
    """A context in which this process's clock (`time.time`) is `offset` seconds off."""
    real = time.time

    @contextmanager
    def clock(offset: float) -> Iterator[None]:
        monkeypatch.setattr(time, "time", lambda: real() + offset)
        try:
            yield
        finally:
            monkeypatch.setattr(time, "time", real)

    return clock


@pytest.fixture
def replicas(make_engine: Any, real_store: Store, tmp_path: Path) -> Callable[..., list[Engine]]:
    """Two engines, each with its own store client, on one real Redis (same prefix)."""
    config = write_config(tmp_path / "services.yaml", SERVICES)

    def build(**env: str) -> list[Engine]:
        engines = []
        for _ in range(2):
            store = Store(real_store.client, prefix=real_store.prefix)
            engines.append(make_engine(store=store, ROLLBACK_CONFIG=config, **env))
        return engines

    return build


def test_a_slow_replicas_rollback_still_holds_the_cooldown(replicas: Any, skewed: Skewed) -> None:
    slow, right = replicas(COOLDOWN_MINUTES="5")  # shorter than the skew
    with skewed(-SKEW):
        assert fire(slow, "s0", starts_at="2026-11-26T10:00:00Z").reason == "passed"
        assert slow.wait_idle(10)
    assert fire(right, "s0", starts_at="2026-11-26T10:01:00Z").reason == "cooldown"


def test_a_slow_replicas_starts_still_count_in_the_global_limit_window(
    replicas: Any, skewed: Skewed
) -> None:
    slow, right = replicas(MAX_CONCURRENT_ROLLBACKS="3", GLOBAL_LIMIT_WINDOW="10m")
    with skewed(-SKEW):
        for service in ("s0", "s1", "s2"):
            assert fire(slow, service).reason == "passed"
            assert slow.wait_idle(10)
    assert fire(right, "s3").reason == "global_limit"


def test_a_fast_replicas_dead_lease_is_reaped_when_it_runs_out(
    replicas: Any, skewed: Skewed, backend: Backend
) -> None:
    fast, right = replicas(LOCK_LEASE_SECONDS="2")
    fast.store.renew = lambda *args: True  # type: ignore[method-assign]  # its renewals are lost
    backend.release = threading.Event()
    try:
        with skewed(+SKEW):
            started = fire(fast, "s0")
        assert started.reason == "passed"
        deadline = time.monotonic() + 20  # bounded; the lease itself is 2 s of Redis time
        reaped = 0
        record = right.store.get_record(started.rollback_id or "")
        while time.monotonic() < deadline and record is not None and record.state == "running":
            time.sleep(0.25)
            reaped += sweep_once(right)["interrupted"]
            record = right.store.get_record(started.rollback_id or "")
        assert record is not None and record.state == "interrupted", record
        assert reaped == 1  # the right replica's sweep reaped it, exactly once
    finally:
        backend.release.set()
        fast.wait_idle(10)


def test_a_fast_replica_does_not_pass_the_veto_deadline_early(
    replicas: Any, skewed: Skewed, backend: Backend
) -> None:
    right, fast = replicas(REQUIRE_APPROVAL="true", EMERGENCY_VETO_MINUTES="5")
    held = fire(right, "s0")
    assert held.decision == "pending_approval"
    with skewed(+SKEW):
        counts = sweep_once(fast)
    assert counts["vetoed"] == 0 and backend.executed() == []
    record = right.store.get_record(held.rollback_id or "")
    assert record is not None and record.state == "pending_approval"
