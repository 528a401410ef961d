"""The one place that runs a reserved rollback: stages, lease, outcome, metrics, lock.

Every backend plugs in through `RollbackAction`; whatever happens, the record
ends in `completed`, `failed` or `interrupted`, the lock is released by its
owner and the outcome is counted and told.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from receiver import metrics
from receiver.act.base import ActionContext, RollbackAction, RollbackJob
from receiver.errors import ActionError, LockLost, StoreUnavailable
from receiver.state import autosync
from receiver.state.history import Restoration, RollbackRecord, StageName, State, iso
from receiver.state.store import Store
from receiver.tell.base import COMPLETED, FAILED, INTERRUPTED, NOT_EFFECTIVE, Event
from receiver.tell.events import event_for

log = logging.getLogger("receiver.dispatch")

Stabilizer = Callable[[RollbackJob], "bool | None"]
Tell = Callable[[Event], None]


class Lease:
    """Keeps the service lock's lease alive while a rollback runs; knows when it was lost."""

    def __init__(self, store: Store, service: str, owner: str, lease_seconds: int) -> None:
        self.store = store
        self.service = service
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"lease-{service}", daemon=True
        )

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _renew_loop(self) -> None:
        interval = max(self.lease_seconds / 3, 0.2)
        while not self._stop.wait(interval):
            try:
                if not self.store.renew(self.service, self.owner, self.lease_seconds):
                    self._lost.set()
                    return
            except StoreUnavailable:
                log.warning(
                    "lease renewal failed: state store unreachable",
                    extra={"service": self.service, "rollback_id": self.owner},
                )

    def ensure_owned(self) -> None:
        """Raise LockLost unless this runner still holds the service lock (checked in Redis)."""
        if self._lost.is_set():
            raise LockLost(f"lost the lock of {self.service}: lease expired")
        try:
            owned = self.store.owns(self.service, self.owner)
        except StoreUnavailable:
            raise LockLost(
                f"cannot confirm the lock of {self.service}: state store unreachable"
            ) from None
        if not owned:
            self._lost.set()
            raise LockLost(f"lost the lock of {self.service}: lease expired")


@dataclass
class Dispatcher:
    """Runs rollbacks to their end; shared by the webhook, the API and `monitor`."""

    store: Store
    lease_seconds: int
    tell: Tell = lambda event: None
    stabilize: Stabilizer | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(
        self, record: RollbackRecord, job: RollbackJob, actions: Sequence[RollbackAction]
    ) -> RollbackRecord:
        """Execute, validate and check a reserved rollback; never raises."""
        started = time.monotonic()
        ctx = ActionContext(ensure_owned=lambda: None)
        with Lease(self.store, job.service, job.rollback_id, self.lease_seconds) as lease:
            ctx.ensure_owned = self._guard(lease)
            try:
                for action in actions:
                    self._stage(record, ctx, action.stage, partial(action.execute, job, ctx))
                if ctx.details.get("validated") is False:
                    record.validated = False
                else:
                    validators = [
                        a for a in actions if type(a).validate is not RollbackAction.validate
                    ]
                    for action in validators:
                        self._stage(
                            record,
                            ctx,
                            StageName.VALIDATION,
                            partial(action.validate, job, ctx),
                        )
                    # Without a step that waits for the change to go live (gitops mode and
                    # no Argo CD app) nothing was validated: say so instead of claiming it.
                    record.validated = True if validators else None
                    record.details["validation"] = (
                        "validated: the change is live"
                        if validators
                        else "not validated: no Argo CD application to watch; the commit was "
                        "pushed, deployment was not observed"
                    )
                    if self.stabilize is not None:
                        fell = self.stabilize(job)
                        record.not_effective = fell is False
                        record.details["errors_fell"] = fell
                won = self._finish(record, State.COMPLETED, None, None)
            except ActionError as exc:
                won = self._finish(record, State.FAILED, exc.stage, exc.message)
            except LockLost as exc:
                won = self._finish(record, State.INTERRUPTED, StageName.INTERRUPTED, exc.message)
            except Exception as exc:  # a backend bug must not leave a rollback running
                log.exception("rollback crashed", extra={"rollback_id": record.id})
                won = self._finish(
                    record,
                    State.FAILED,
                    record.stages[-1].name if record.stages else StageName.GITOPS,
                    f"internal error: {exc.__class__.__name__}",
                )
        self._account(record, job, time.monotonic() - started, won)
        return record

    def _guard(self, lease: Lease) -> Callable[[], None]:
        def ensure_owned() -> None:
            if self.stopping.is_set():
                raise LockLost("receiver shutting down: stopped at a safe point")
            lease.ensure_owned()

        return ensure_owned

    def _stage(
        self, record: RollbackRecord, ctx: ActionContext, name: str, body: Callable[[], None]
    ) -> None:
        stage = record.start_stage(name)
        self._save(record)
        try:
            body()
        except ActionError as exc:
            self._absorb(record, ctx)
            record.finish_stage(stage, False, exc.message)
            raise
        except LockLost as exc:
            self._absorb(record, ctx)
            record.finish_stage(stage, False, exc.message)
            raise
        except Exception as exc:
            self._absorb(record, ctx)
            record.finish_stage(stage, False, f"internal error: {exc.__class__.__name__}")
            raise ActionError(name, f"internal error: {exc.__class__.__name__}") from exc
        self._absorb(record, ctx)
        record.finish_stage(stage, True)
        self._save(record)

    @staticmethod
    def _absorb(record: RollbackRecord, ctx: ActionContext) -> None:
        """Copy what the backends did so far into the record (partial results included)."""
        details = ctx.details
        record.absorb(Restoration.from_details(details))
        record.details.update({k: v for k, v in details.items() if k not in record.target})

    def _save(self, record: RollbackRecord) -> None:
        try:
            if not self.store.save_record(record, expect=(State.RUNNING,)):
                raise LockLost(
                    f"record {record.id} was taken over (marked "
                    f"{self.store.record_state(record.id)})"
                )
        except StoreUnavailable:
            log.warning(
                "could not save rollback progress: state store unreachable",
                extra={"rollback_id": record.id},
            )

    def _finish(
        self, record: RollbackRecord, state: str, stage: str | None, error: str | None
    ) -> bool:
        """Record the outcome; False when someone else (the reaper) already finished it."""
        record.state = state
        record.finished_at = iso()
        record.failed_stage = stage if state != State.COMPLETED else None
        record.error = error
        try:
            if not self.store.save_record(record, expect=(State.RUNNING,)):
                # The reaper (or an operator) finished it: it has counted and told already.
                log.warning(
                    "rollback record was already finished elsewhere",
                    extra={"rollback_id": record.id},
                )
                record.state = self.store.record_state(record.id) or state
                return False
            self.store.mark_transition(record.service, state)
        except StoreUnavailable:
            log.error(
                "could not record the rollback outcome: state store unreachable",
                extra={"rollback_id": record.id, "state": state},
            )
        return True

    def _account(self, record: RollbackRecord, job: RollbackJob, seconds: float, won: bool) -> None:
        try:
            if record.details.get("autosync_disabled") and job.target.argocd_app:
                autosync.mark_disabled(self.store, job.target.argocd_app, record.id)
            released = self.store.release(job.service, job.rollback_id)
            if released == 0:
                log.warning("lock was no longer ours at release", extra={"rollback_id": record.id})
            if record.state == State.COMPLETED:
                restoration = record.restoration()
                self.store.remember_revisions(
                    job.service, restoration.rolled_back_from(), restoration.live_revision()
                )
        except StoreUnavailable:
            log.error(
                "could not release the lock: state store unreachable; its lease expires",
                extra={"rollback_id": record.id, "service": job.service},
            )
        if not won:
            return
        metrics.DURATION.labels(job.service).observe(seconds)
        extra = {
            "rollback_id": record.id,
            "service": job.service,
            "state": record.state,
            "stage": record.failed_stage,
            "error": record.error,
        }
        if record.state == State.COMPLETED:
            metrics.COMPLETED.labels(job.service, job.tier).inc()
            if record.not_effective:
                metrics.NOT_EFFECTIVE.labels(job.service).inc()
                log.warning("rollback completed but errors did not fall", extra=extra)
            else:
                log.info("rollback completed", extra=extra)
        else:
            metrics.FAILED.labels(
                job.service, job.tier, record.failed_stage or StageName.GITOPS
            ).inc()
            log.error(f"rollback {record.state}", extra=extra)
        kinds: dict[str, str] = {
            State.COMPLETED: NOT_EFFECTIVE if record.not_effective else COMPLETED,
            State.FAILED: FAILED,
            State.INTERRUPTED: INTERRUPTED,
        }
        kind = kinds.get(record.state, FAILED)
        self.tell(event_for(record, kind))
