"""The reservation a verdict's plan asks for: one atomic script (state/reservation.py).

The script also creates the record of a rollback, a pending approval or a dry run (with its
deadlines and index entries), so a reserved slot or a claimed episode never lacks its record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from receiver import approvals
from receiver.config import ServiceTarget, Settings
from receiver.decide.policy import (
    Facts,
    Plan,
    Reservation,
    ReserveMode,
    Trigger,
    Verdict,
    reservation_from,
    settle,
)
from receiver.decide.vocabulary import Origin
from receiver.errors import Conflict
from receiver.records import ManualRequest, new_record
from receiver.state.history import RollbackRecord, State
from receiver.state.locking import NewRecord, SafetyTarget
from receiver.state.store import Store
from receiver.status import reservation_snapshot


def safety_targets(target: ServiceTarget | None) -> tuple[SafetyTarget, ...]:
    """The target's safety ids (`ServiceTarget.safety_targets`), with a folder's scope and path."""
    if target is None:
        return ()
    scope, path = target.git_scope() or "", target.gitops.path if target.gitops else ""
    return tuple(
        SafetyTarget(i, scope, path) if i.startswith("git:") else SafetyTarget(i)
        for i in target.safety_targets()
    )


def _new_record(store: Store, settings: Settings, record: RollbackRecord) -> NewRecord:
    """What the script writes for a new record: its JSON and, if pending, its deadlines."""
    if record.state != State.PENDING_APPROVAL:
        return NewRecord(record.to_json(), record.state)
    expires_in, veto_in = approvals.deadlines(settings, record, store.now())
    return NewRecord(record.to_json(), record.state, expires_in, veto_in)


def reserve(
    store: Store,
    settings: Settings,
    trigger: Trigger,
    origin: Origin,
    rollback_id: str,
    plan: Plan,
    peek: bool = False,
    target: ServiceTarget | None = None,
    record: RollbackRecord | None = None,
) -> Reservation:
    """Dedupe, locks, cooldown, rate limits and global limit in one step; `peek` changes nothing.

    `record` (the record the decision writes if the reservation passes) is created in the same
    step. An approval only reserves while its record is still pending: one approval wins.
    """
    mode = ReserveMode.PEEK if peek else plan.mode
    approving = origin == Origin.APPROVAL
    new_state = {
        ReserveMode.RESERVE: State.RUNNING,
        ReserveMode.HOLD: State.SKIPPED if approving else "",
        ReserveMode.PEEK: "",
    }[mode]
    created = None
    if record is not None and mode != ReserveMode.PEEK and not approving:
        created = _new_record(store, settings, record)
    result = store.reserve(
        service=trigger.service,
        rollback_id=rollback_id,
        episode=trigger.episode if plan.claims_episode else None,
        mode=mode,
        force=plan.force,
        lease_seconds=settings.lock_lease_seconds,
        cooldown_minutes=settings.cooldown_minutes,
        max_hour=settings.max_rollbacks_per_hour,
        max_day=settings.max_rollbacks_per_day,
        max_concurrent=settings.max_concurrent_rollbacks,
        global_window_seconds=settings.global_limit_window_seconds,
        targets=safety_targets(target),
        record=created,
        expect_state=State.PENDING_APPROVAL if approving else "",
        new_state=new_state,
    )
    if result.reason == "not_pending":
        raise Conflict(f"rollback {rollback_id} is not pending (it is {result.detail})")
    reservation = reservation_from(result.reason, result.detail, settings, result.target)
    if peek:  # explain shows each of the script's checks, read one by one
        return replace(reservation, snapshot=reservation_snapshot(settings, store, trigger.service))
    return reservation


@dataclass(frozen=True)
class Placing:
    """Who asks for a reservation: the trigger, its origin, the id and actor of its record."""

    trigger: Trigger
    origin: Origin
    rollback_id: str
    request: ManualRequest | None
    actor: str


def reserve_verdict(
    store: Store,
    settings: Settings,
    placing: Placing,
    verdict: Verdict,
    facts: Facts,
    peek: bool,
) -> tuple[Verdict, RollbackRecord | None]:
    """Make the planned reservation: the settled verdict, and the record it created if any."""
    p, plan = placing, verdict.plan
    assert plan is not None
    record = None
    if not peek and p.origin != Origin.APPROVAL:
        passed = settle(verdict, Reservation("ok"))
        mode = (p.request.mode if p.request else None) or settings.rollback_mode
        record = new_record(p.trigger, passed, facts, p.rollback_id, p.actor, mode, p.request)
    reservation = reserve(
        store, settings, p.trigger, p.origin, p.rollback_id, plan, peek, facts.target, record
    )
    settled = settle(verdict, reservation)
    return settled, record if reservation.reason == "ok" else None
