"""The rollback runner: builds a rollback's job and backends once, runs it in a thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from receiver import metrics
from receiver.act.base import RollbackAction, RollbackJob
from receiver.act.dispatch import Dispatcher, Stabilizer, memory_names, target_memory_names
from receiver.config import ServiceTarget, Settings
from receiver.decide.facts import TargetFacts
from receiver.decide.policy import Trigger
from receiver.errors import ActionError
from receiver.records import ManualRequest
from receiver.state.history import RollbackRecord, StageName, State
from receiver.state.memory import PastRollback, Recall, RevisionMemory
from receiver.state.store import Store
from receiver.tell.base import STARTED, Event
from receiver.tell.events import event_for

log = logging.getLogger("receiver.runner")

ActionFactory = Callable[[Settings, ServiceTarget, str], Sequence[RollbackAction]]
Tell = Callable[[Event], None]


class Preparation:
    """One rollback's job and backends, built once: `inspect` and `execute` share them."""

    def __init__(
        self,
        job: RollbackJob,
        settings: Settings,
        build_actions: ActionFactory,
        store: Store | None = None,
        unmarked: Sequence[str] | None = None,
    ) -> None:
        self.job = job
        self.store = store
        self._unmarked = unmarked  # the markers read with the memory; None: read them
        self._build: Callable[[], list[RollbackAction]] = lambda: list(
            build_actions(settings, job.target, job.mode)
        )
        self._actions: list[RollbackAction] | None = None
        self._error: Exception | None = None

    @classmethod
    def of(
        cls,
        settings: Settings,
        store: Store,
        build_actions: ActionFactory,
        trigger: Trigger,
        target: ServiceTarget,
        rollback_id: str,
        request: ManualRequest | None,
        recalled: Recall | None = None,
    ) -> Preparation:
        """The job of a rollback of `trigger` to `target` (one read of the revision memory,
        unless the duplicate test already brought it: `recalled`)."""
        if recalled is None:
            recalled = RevisionMemory(store).recall(target_memory_names(trigger.service, target))
        job = RollbackJob(
            rollback_id=rollback_id,
            service=trigger.service,
            namespace=trigger.namespace,
            tier=trigger.tier or "manual",
            target=target,
            mode=(request.mode if request and request.mode else None) or settings.rollback_mode,
            reason=(request.reason if request else f"{trigger.alertname} ({trigger.tier}) fired"),
            automatic=request is None,
            fingerprint=trigger.fingerprint or None,
            target_commit=(request.target_commit if request else None),
            target_revision=(request.target_revision if request else None),
            bad_revisions=recalled.bad_revisions,
            rolled_back_to=recalled.restored,
            dry_run=bool(settings.dry_run or (request and request.dry_run)),
        )
        return cls(job, settings, build_actions, store, recalled.unmarked)

    def actions(self) -> list[RollbackAction]:
        """The backends of this mode; a failure to build them is raised again, not retried."""
        if self._error is not None:
            raise self._error
        if self._actions is None:
            try:
                self._actions = self._build()
            except Exception as exc:
                self._error = exc
                raise
        return self._actions

    def inspect(self) -> TargetFacts:
        """What every backend of this mode reads about the target, merged."""
        self.rederive()
        merged = TargetFacts()
        for action in self.actions():
            merged = merged.merge(action.inspect(self.job))
        return merged

    def rederive(self) -> None:
        """When a target's marker is missing (Redis lost it), re-seed it from git and Argo CD."""
        # Runs before the reservation, so the Lua sees the re-seeded starts (cooldown, limits).
        if self.store is None:
            return
        memory = RevisionMemory(self.store)
        names = memory_names(self.job)
        unmarked, self._unmarked = self._unmarked, None  # read with the memory, used once
        if not (memory.unmarked(names) if unmarked is None else unmarked):
            return
        past: dict[str, PastRollback] = {}  # by restored revision: mode both shows one twice
        for action in self.actions():
            for rollback in action.past_rollbacks(self.job):  # an ActionError fails the inspect
                past.setdefault(rollback.restored or rollback.rollback_id, rollback)
        memory.reseed(names, list(past.values()))
        log.warning(
            "revision memory was missing: re-derived from the systems of record",
            extra={"service": self.job.service, "found": len(past)},
        )
        found = list(past.values())
        self.job = replace(
            self.job,
            bad_revisions=self.job.bad_revisions
            | {p.rolled_back_from for p in found if p.rolled_back_from},
            rolled_back_to=self.job.rolled_back_to | {p.restored for p in found if p.restored},
        )


class Runner:
    """Starts reserved rollbacks and runs them in a bounded pool of threads."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        build_actions: ActionFactory,
        tell: Tell,
        stabilize: Stabilizer | None = None,
        max_workers: int = 8,
    ) -> None:
        self.settings, self.store, self.build_actions = settings, store, build_actions
        self.tell = tell
        self.dispatcher = Dispatcher(store, settings.lock_lease_seconds, tell, stabilize)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rollback")
        self._running: set[Future[RollbackRecord]] = set()
        self._lock = threading.Lock()

    def prepare(
        self,
        trigger: Trigger,
        target: ServiceTarget,
        rollback_id: str,
        request: ManualRequest | None,
        recalled: Recall | None = None,
    ) -> Preparation:
        """The job and backends of one rollback, for its inspect and, later, its execute."""
        return Preparation.of(
            self.settings,
            self.store,
            self.build_actions,
            trigger,
            target,
            rollback_id,
            request,
            recalled,
        )

    def start(
        self, record: RollbackRecord, prep: Preparation, *, new: bool, recorded: bool = False
    ) -> RollbackRecord:
        """The reservation is ours: record, count, tell, run; answers the record as it starts.

        The reservation script marked the `running` transition, and with `recorded` it also
        created the record, so nothing is written here before the run.
        """
        record.state = State.RUNNING
        if new:
            self.store.create_record(record)
        elif not recorded:
            self.store.save_record(record)
        RevisionMemory(self.store).mark(memory_names(prep.job))  # first rollback of a target
        metrics.STARTED.labels(record.service, record.tier).inc()
        self.tell(event_for(record, STARTED))
        answer = RollbackRecord.from_json(record.to_json())  # the runner goes on changing it
        self.submit(record, prep)
        return answer

    def submit(self, record: RollbackRecord, prep: Preparation) -> Future[RollbackRecord]:
        try:
            actions: list[RollbackAction] = prep.actions()
        except Exception as exc:
            actions = [_Broken(str(exc))]
        future = self._executor.submit(self.dispatcher.run, record, prep.job, actions)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[RollbackRecord]) -> None:
        with self._lock:
            self._running.discard(future)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every running rollback in this process ended (tests, shutdown, --once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return True
            time.sleep(0.05)
        return False

    def shutdown(self, timeout: float) -> None:
        """Stop taking work; running rollbacks stop at their next safe point after `timeout`."""
        if not self.wait_idle(timeout):
            self.dispatcher.stopping.set()
            self.wait_idle(5)
        self._executor.shutdown(wait=False)


class _Broken(RollbackAction):
    """Stands in when the backends cannot even be built: fails the first stage clearly."""

    stage = StageName.GITOPS

    def __init__(self, message: str) -> None:
        self.message = message

    def inspect(self, job: RollbackJob) -> TargetFacts:
        raise ActionError(self.stage, self.message)

    def execute(self, job: RollbackJob, ctx: Any) -> None:
        raise ActionError(self.stage, self.message)
