"""Issue 15 item 0: MAX_CONCURRENT_ROLLBACKS counts rollbacks started within GLOBAL_LIMIT_WINDOW."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from receiver.intake.payload import parse_alert
from receiver.state.store import Store
from tests.chaos.support import fire, write_config
from tests.support import alert

SERVICES = {
    f"svc{i:03d}": {"path": f"k8s/svc{i:03d}", "app": f"svc{i:03d}-prod"} for i in range(300)
}


def _burst(
    make_engine: Any, real_store: Store, tmp_path: Path, window: str, count: int = 300
) -> Counter[str]:
    """`count` triggers for as many services; each rollback ends before the next is decided."""
    services = dict(list(SERVICES.items())[:count])
    config = write_config(tmp_path / "services.yaml", services)
    engine = make_engine(
        store=real_store,
        ROLLBACK_CONFIG=config,
        MAX_CONCURRENT_ROLLBACKS="3",
        GLOBAL_LIMIT_WINDOW=window,
    )
    reasons: Counter[str] = Counter()
    for service in services:
        reasons[fire(engine, service).reason] += 1
        assert engine.wait_idle(10)  # instant rollbacks: no lock is held at the next alert
    return reasons


def test_a_burst_of_instant_rollbacks_starts_at_most_the_limit_within_the_window(
    make_engine: Any, real_store: Store, tmp_path: Path
) -> None:
    reasons = _burst(make_engine, real_store, tmp_path, "10m")
    assert reasons == Counter({"passed": 3, "global_limit": 297})
    assert real_store.held_locks() == 0  # the three finished: only the window held the rest


def test_a_zero_window_counts_only_rollbacks_holding_a_lock(
    make_engine: Any, real_store: Store, tmp_path: Path
) -> None:
    # 30 are enough to pass the limit of 3 ten times over; every one of them runs.
    reasons = _burst(make_engine, real_store, tmp_path, "0", count=30)
    assert reasons == Counter({"passed": 30})


def _one_finished(make_engine: Any, real_store: Store, tmp_path: Path, services: int) -> Any:
    """An engine with MAX_CONCURRENT_ROLLBACKS=1 whose svc000 rollback started and finished:
    it holds no lock, but it started within the window."""
    config = write_config(tmp_path / "services.yaml", dict(list(SERVICES.items())[:services]))
    engine = make_engine(store=real_store, ROLLBACK_CONFIG=config, MAX_CONCURRENT_ROLLBACKS="1")
    assert fire(engine, "svc000").reason == "passed"
    assert engine.wait_idle(10)
    return engine


def test_the_global_limit_detail_names_the_window(
    make_engine: Any, real_store: Store, tmp_path: Path
) -> None:
    engine = _one_finished(make_engine, real_store, tmp_path, services=2)
    blocked = fire(engine, "svc001")
    record = real_store.get_record(blocked.rollback_id or "")
    assert blocked.reason == "global_limit" and record is not None
    assert "started within GLOBAL_LIMIT_WINDOW" in record.checks[-1]["detail"]


def test_explain_counts_rollbacks_started_within_the_window_like_the_reservation(
    make_engine: Any, real_store: Store, tmp_path: Path
) -> None:
    """Explain's global-limit line counts what the reservation counts, even behind a cooldown."""
    engine = _one_finished(make_engine, real_store, tmp_path, services=1)
    raw = alert("svc000", fingerprint="fp-svc000-again")
    checks = {str(c["check"]): c for c in engine.explain(parse_alert(raw, 0)).checks}
    assert checks["cooldown"]["passed"] is False  # the script stops here; the rest is read
    assert checks["global_limit"]["passed"] is False, checks["global_limit"]
    assert "started within GLOBAL_LIMIT_WINDOW" in str(checks["global_limit"]["detail"])
