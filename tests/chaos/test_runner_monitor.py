"""`monitor --once` under its own exit: the sweep's vetoed emergency runs to its end (item 6)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from receiver.intake.payload import parse_alert
from receiver.monitor import run_once
from receiver.pipeline import Engine
from tests.support import Backend, alert


class QuietPrometheus:
    """A Prometheus with no firing alert: only the sweep can start anything."""

    def alerts(self) -> list[dict[str, Any]]:
        return []

    def config_yaml(self) -> str:
        return "global: {}\n"


def pending_emergency(engine: Engine, fingerprint: str = "00000000000000a1") -> str:
    outcome = engine.handle_alert(parse_alert(alert("api", fingerprint=fingerprint), 0))
    assert outcome.decision == "pending_approval"
    assert outcome.rollback_id is not None
    return outcome.rollback_id


def test_once_waits_for_the_vetoed_emergency_its_sweep_started(
    make_engine: Callable[..., Engine], backend: Backend
) -> None:
    engine = make_engine(REQUIRE_APPROVAL="true", EMERGENCY_VETO_MINUTES="5")
    rid = pending_emergency(engine)
    engine.store.add_deadline("veto", rid, time.time() - 1)
    backend.execute_seconds = 0.5
    result = run_once(engine, QuietPrometheus(), wait_seconds=20)  # type: ignore[arg-type]
    assert result.swept["vetoed"] == 1
    # The CLI stops the engine right after run_once: nothing may still be running then.
    engine.shutdown(0)
    record = engine.store.get_record(rid)
    assert record is not None and record.state == "completed"
    assert not result.unfinished and result.exit_code == 0
    assert engine.store.due("veto") == []


def test_the_veto_deadline_stays_until_the_rollback_has_started(
    make_engine: Callable[..., Engine], backend: Backend
) -> None:
    engine = make_engine(REQUIRE_APPROVAL="true", EMERGENCY_VETO_MINUTES="5")
    rid = pending_emergency(engine)
    engine.store.add_deadline("veto", rid, time.time() - 1)
    engine.store.client.set(engine.store.key("lock", "api"), "someone-else", px=60000)
    result = run_once(engine, QuietPrometheus(), wait_seconds=5)  # type: ignore[arg-type]
    assert result.swept["vetoed"] == 0
    assert engine.store.due("veto") == [rid]  # blocked (locked): it is tried again
    record = engine.store.get_record(rid)
    assert record is not None and record.state == "pending_approval"
    engine.store.client.delete(engine.store.key("lock", "api"))
    backend.release = threading.Event()
    backend.release.set()
    result = run_once(engine, QuietPrometheus(), wait_seconds=20)  # type: ignore[arg-type]
    assert result.swept["vetoed"] == 1
    assert engine.store.due("veto") == []
    record = engine.store.get_record(rid)
    assert record is not None and record.state == "completed"
