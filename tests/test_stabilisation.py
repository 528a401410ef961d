"""What the stabilisation verdict does to the record and the notifications."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from receiver.act.base import RollbackJob
from receiver.app import build_engine
from receiver.config import Settings
from receiver.intake.payload import parse_alert
from receiver.pipeline import Engine
from receiver.state.store import Store
from receiver.tell import base
from tests.support import Backend, Collector, alert


@pytest.fixture
def run_with(make_settings: Callable[..., Settings], fake_store: Store, backend: Backend) -> Any:
    engines: list[Engine] = []

    def run(verdict: bool | None) -> tuple[dict[str, Any], Collector, list[float]]:
        seen: list[float] = []

        def stabilize(job: RollbackJob) -> bool | None:
            seen.append(1.0)
            return verdict

        collector = Collector()
        engine = build_engine(
            make_settings(),
            store=fake_store,
            build_actions=backend.factory,
            tell=collector,
            silences=None,
            stabilize=stabilize,
        )
        engines.append(engine)
        outcome = engine.handle_alert(parse_alert(alert(), 0))
        assert outcome.decision == "rollback", outcome
        assert engine.wait_idle(10)
        record = engine.store.get_record(outcome.rollback_id)
        assert record is not None
        return record.to_dict(), collector, seen

    yield run
    for engine in engines:
        engine.shutdown(5)


def completion(collector: Collector) -> base.Event:
    (event,) = [e for e in collector.events if e.kind in (base.COMPLETED, base.NOT_EFFECTIVE)]
    return event


def test_no_post_rollback_sample_is_recorded_unknown_and_told_unverified(run_with: Any) -> None:
    record, collector, seen = run_with(None)
    assert seen == [1.0]
    assert record["state"] == "completed"
    assert record["details"]["errors_fell"] == "unknown"
    assert record["not_effective"] is False
    assert record["details"]["validated_at"]
    event = completion(collector)
    assert event.kind == base.COMPLETED and base.errors_unverified(event)


def test_errors_that_fell_complete_verified(run_with: Any) -> None:
    record, collector, _ = run_with(True)
    assert (record["state"], record["details"]["errors_fell"]) == ("completed", True)
    assert not base.errors_unverified(completion(collector))


def test_errors_that_did_not_fall_are_not_effective(run_with: Any) -> None:
    record, collector, _ = run_with(False)
    assert record["state"] == "completed" and record["not_effective"] is True
    assert record["details"]["errors_fell"] is False
    assert completion(collector).kind == base.NOT_EFFECTIVE
