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
from receiver.decide.targets import ServiceTarget
from receiver.errors import ActionError, LockLost, StoreUnavailable
from receiver.state import autosync
from receiver.state.history import Restoration, RollbackRecord, StageName, State, iso
from receiver.state.memory import RevisionMemory
from receiver.state.store import Store
from receiver.tell.base import (
    COMPLETED,
    ERRORS_UNKNOWN,
    FAILED,
    INTERRUPTED,
    NOT_EFFECTIVE,
    Event,
)
from receiver.tell.events import event_for

log = logging.getLogger("receiver.dispatch")

# Called right after validation: did errors fall in traffic served since? None = not verified.
Stabilizer = Callable[[RollbackJob], "bool | None"]
Tell = Callable[[Event], None]

# Waits between attempts to write a rollback's outcome (about 15 s in all, within a lease).
OUTCOME_BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
WON, LOST, UNRECORDED = "won", "lost", "unrecorded"  # how the outcome write ended


def memory_names(job: RollbackJob) -> tuple[str, ...]:
    """The service and its safety targets: every name whose revision memory a rollback writes."""
    return target_memory_names(job.service, job.target)


def target_memory_names(service: str, target: ServiceTarget) -> tuple[str, ...]:
    """`memory_names` of a rollback of `service` to `target`, before its job exists."""
    return (service, *target.safety_targets())


def wrote_externally(details: dict[str, object]) -> bool:
    """True once a backend changed a system of record: a commit pushed, an Argo CD deploy."""
    pushed = bool(details.get("revert_commit")) and not details.get("pull_request")
    return pushed or bool(details.get("argocd_written"))


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
    outcome_backoff: Sequence[float] = OUTCOME_BACKOFF
    sleep: Callable[[float], None] = time.sleep

    def run(
        self, record: RollbackRecord, job: RollbackJob, actions: Sequence[RollbackAction]
    ) -> RollbackRecord:
        """Execute, validate and check a reserved rollback; never raises."""
        started = time.monotonic()
        ctx = ActionContext(ensure_owned=lambda: None, log=partial(_progress, job))
        with Lease(self.store, job.service, job.rollback_id, self.lease_seconds) as lease:
            ctx.ensure_owned = self._guard(lease)
            try:
                for action in actions:
                    self._stage(record, ctx, action.stage, partial(action.execute, job, ctx), job)
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
                            job,
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
                        record.details["validated_at"] = iso()
                        self._save(record)  # readers see when the judged traffic starts
                        fell = self.stabilize(job)
                        record.not_effective = fell is False
                        record.details["errors_fell"] = ERRORS_UNKNOWN if fell is None else fell
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
        self._account(record, job, time.monotonic() - started, won, ctx.details)
        return record

    def _guard(self, lease: Lease) -> Callable[[], None]:
        def ensure_owned() -> None:
            if self.stopping.is_set():
                raise LockLost("receiver shutting down: stopped at a safe point")
            lease.ensure_owned()

        return ensure_owned

    def _stage(
        self,
        record: RollbackRecord,
        ctx: ActionContext,
        name: str,
        body: Callable[[], None],
        job: RollbackJob,
    ) -> None:
        stage = record.start_stage(name)
        self._save(record)
        try:
            body()
        except ActionError as exc:
            self._absorb(record, ctx, job)
            record.finish_stage(stage, False, exc.message)
            raise
        except LockLost as exc:
            self._absorb(record, ctx, job)
            record.finish_stage(stage, False, exc.message)
            raise
        except Exception as exc:
            self._absorb(record, ctx, job)
            record.finish_stage(stage, False, f"internal error: {exc.__class__.__name__}")
            raise ActionError(name, f"internal error: {exc.__class__.__name__}") from exc
        self._absorb(record, ctx, job)
        record.finish_stage(stage, True)
        self._save(record)

    def _absorb(self, record: RollbackRecord, ctx: ActionContext, job: RollbackJob) -> None:
        """Copy what the backends did so far into the record; remember revisions once written."""
        details = ctx.details
        record.absorb(Restoration.from_details(details))
        record.details.update({k: v for k, v in details.items() if k not in record.target})
        if wrote_externally(details):
            self._remember(record, job)

    def _remember(self, record: RollbackRecord, job: RollbackJob) -> None:
        """Revision memory of the service and its targets, as soon as an external write happened."""
        restoration = record.restoration()
        try:
            RevisionMemory(self.store).remember(
                memory_names(job), restoration.rolled_back_from(), restoration.live_revision()
            )
        except StoreUnavailable:
            log.warning(
                "could not write the revision memory yet: state store unreachable",
                extra={"rollback_id": record.id},
            )

    def _save(self, record: RollbackRecord) -> None:
        try:
            if not self.store.save_record(record, expect=(State.RUNNING,)):
                current = self.store.record_state(record.id)
                if current is None:  # lost state (Redis restarted empty): write it again
                    record.details["state_lost"] = True
                    self.store.create_record(record)
                    return
                raise LockLost(f"record {record.id} was taken over (marked {current})")
        except StoreUnavailable:
            log.warning(
                "could not save rollback progress: state store unreachable",
                extra={"rollback_id": record.id},
            )

    def _finish(
        self, record: RollbackRecord, state: str, stage: str | None, error: str | None
    ) -> str:
        """Record the outcome, retried with backoff: WON, LOST (the reaper ended it), UNRECORDED."""
        record.state = state
        record.finished_at = iso()
        record.failed_stage = stage if state != State.COMPLETED else None
        record.error = error
        for wait in (*self.outcome_backoff, None):
            try:
                return self._write_outcome(record, state)
            except StoreUnavailable:
                log.warning(
                    "could not record the rollback outcome: state store unreachable; retrying",
                    extra={"rollback_id": record.id, "state": state},
                )
            if wait is not None:
                self.sleep(wait)
        log.error(
            "rollback outcome unrecorded: state store unreachable; the lock is left to expire "
            "and the reaper decides",
            extra={"rollback_id": record.id, "state": state},
        )
        return UNRECORDED

    def _write_outcome(self, record: RollbackRecord, state: str) -> str:
        """One attempt; a missing state key is lost state: the record is written again."""
        if not self.store.save_record(record, expect=(State.RUNNING,)):
            current = self.store.record_state(record.id)
            if current:  # the reaper (or an operator) finished it: it counted and told already
                log.warning(
                    "rollback record was already finished elsewhere",
                    extra={"rollback_id": record.id},
                )
                record.state = current
                return LOST
            log.error(
                "rollback state was lost (Redis restarted empty or flushed): record re-created",
                extra={"rollback_id": record.id, "state": state},
            )
            record.details["state_lost"] = True
            self.store.create_record(record)
        try:
            self.store.mark_transition(record.service, state)
        except StoreUnavailable:
            log.warning("could not mark the transition", extra={"rollback_id": record.id})
        return WON

    def _account(
        self,
        record: RollbackRecord,
        job: RollbackJob,
        seconds: float,
        won: str,
        details: dict[str, object],
    ) -> None:
        if won == UNRECORDED:
            return  # the lease expires; the reaper records, counts and tells `interrupted`
        if wrote_externally(details):
            self._remember(record, job)  # again: Redis may have lost it since the write
        try:
            if record.details.get("autosync_disabled") and job.target.argocd_app:
                autosync.mark_disabled(self.store, job.target.argocd_app, record.id)
            released = self.store.release(job.service, job.rollback_id)
            if released == 0:
                log.warning("lock was no longer ours at release", extra={"rollback_id": record.id})
        except StoreUnavailable:
            log.error(
                "could not release the lock: state store unreachable; its lease expires",
                extra={"rollback_id": record.id, "service": job.service},
            )
        if won != WON:
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


def _progress(job: RollbackJob, message: str) -> None:
    """What a backend says it did (pushed, re-read, disabled auto-sync), in the log."""
    log.info(message, extra={"rollback_id": job.rollback_id, "service": job.service})
