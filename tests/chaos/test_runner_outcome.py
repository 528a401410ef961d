"""The runner's end of run under Redis faults (issue 10 item 5), on a throwaway redis-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from receiver.act.base import ActionContext, RollbackAction, RollbackJob
from receiver.app import build_engine
from receiver.config import ServiceTarget, Settings
from receiver.intake.payload import parse_alert
from receiver.state.memory import RevisionMemory
from receiver.state.store import Store
from receiver.sweeper import sweep_once
from tests.chaos.redis_proc import RedisProcess
from tests.support import Backend, Collector, RecordingAction, alert


class SlowValidation(RecordingAction):
    """Pushes `revert99` like RecordingAction, then validates only once `validating` is set."""

    def __init__(self, backend: Backend, entered: threading.Event, go: threading.Event) -> None:
        super().__init__(backend)
        self.entered, self.go = entered, go

    def validate(self, job: RollbackJob, ctx: ActionContext) -> None:
        self.entered.set()
        assert self.go.wait(20), "the test never let validation finish"


class Faults:
    """One engine on the throwaway Redis, whose validation waits for the test."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.backend, self.collector = Backend(), Collector()
        self.validating, self.go = threading.Event(), threading.Event()
        self.store = store

        def build(settings: Settings, target: ServiceTarget, mode: str) -> Sequence[RollbackAction]:
            return [SlowValidation(self.backend, self.validating, self.go)]

        self.engine = build_engine(settings, store=store, build_actions=build, tell=self.collector)

    def fire(self, fingerprint: str = "00000000000000c1") -> str:
        outcome = self.engine.handle_alert(parse_alert(alert("api", fingerprint=fingerprint), 0))
        assert outcome.decision == "rollback", outcome
        assert outcome.rollback_id is not None
        assert self.validating.wait(10), "the rollback never reached validation"
        return outcome.rollback_id


@pytest.fixture
def faults(make_settings: Callable[..., Settings], chaos_store: Store) -> Iterator[Faults]:
    setup = Faults(make_settings(LOCK_LEASE_SECONDS="2"), chaos_store)
    yield setup
    setup.go.set()
    setup.engine.shutdown(10)


def short_timeouts(store: Store, seconds: float = 0.5) -> None:
    """Each write against a paused server waits out the client timeout (and its one retry):
    a shorter timeout, on connections made afresh, keeps the tests short."""
    pool = store.client.connection_pool
    pool.connection_kwargs["socket_timeout"] = seconds
    pool.disconnect()
    pool.reset()  # new Connection objects, built with the shorter timeout


def completed_count() -> float:
    labels = {"service": "api", "tier": "emergency"}
    return REGISTRY.get_sample_value("rollback_completed_total", labels) or 0.0


def test_redis_restarted_empty_after_the_push_re_creates_the_record_counts_and_tells(
    faults: Faults, redis_server: RedisProcess
) -> None:
    before = completed_count()
    rid = faults.fire()
    redis_server.restart()  # every key is gone: record, state, lock, memory
    faults.go.set()
    assert faults.engine.wait_idle(20)
    record = faults.store.get_record(rid)
    assert record is not None, "the outcome of a rollback that pushed a commit was lost"
    assert record.state == "completed"
    assert record.details.get("state_lost") is True
    assert [r.id for r in faults.store.list_records("api")] == [rid]
    assert completed_count() == before + 1
    assert faults.collector.kinds() == ["started", "completed"]  # PagerDuty gets its resolve
    memory = RevisionMemory(faults.store)
    assert memory.bad_revisions(["api"]) == {"bad1234"}  # written again after the loss
    assert memory.restored_revisions(["git:acme/gitops@main:k8s/api"]) == {"revert99"}
    assert faults.store.lock_owner("api") is None


def test_a_stall_on_the_final_write_is_retried_until_the_outcome_is_recorded(
    faults: Faults, redis_server: RedisProcess
) -> None:
    rid = faults.fire()
    short_timeouts(faults.store)
    redis_server.pause()
    faults.go.set()  # the progress and outcome writes meet a Redis that answers nothing
    time.sleep(3)  # longer than a progress save and a first outcome write (2 x 0.5 s each)
    redis_server.resume()
    assert faults.engine.wait_idle(30)
    record = faults.store.get_record(rid)
    assert record is not None and record.state == "completed"
    assert faults.collector.kinds() == ["started", "completed"]


def test_an_outcome_never_recorded_keeps_the_lock_so_only_the_reaper_decides(
    faults: Faults, redis_server: RedisProcess
) -> None:
    faults.engine.runner.dispatcher.outcome_backoff = (0.1, 0.1)
    rid = faults.fire()
    short_timeouts(faults.store)
    redis_server.pause()
    faults.go.set()
    assert faults.engine.wait_idle(60)  # gave up on the outcome write
    redis_server.resume()
    record = faults.store.get_record(rid)
    assert record is not None and record.state == "running"
    assert faults.collector.kinds() == ["started"]  # no "completed" the reaper contradicts
    deadline = time.monotonic() + 10
    swept: dict[str, Any] = {}
    while time.monotonic() < deadline and not swept.get("interrupted"):
        time.sleep(0.3)  # the lease (2 s) runs out
        swept = sweep_once(faults.engine)
    assert swept.get("interrupted") == 1
    record = faults.store.get_record(rid)
    assert record is not None and record.state == "interrupted"
    assert faults.collector.kinds() == ["started", "interrupted"]
