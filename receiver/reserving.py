"""The reservation a verdict's plan asks for: one atomic script (state/reservation.py)."""

from __future__ import annotations

from dataclasses import replace

from receiver.config import Settings
from receiver.decide.policy import Plan, Reservation, ReserveMode, Trigger, reservation_from
from receiver.decide.vocabulary import Origin
from receiver.errors import Conflict
from receiver.state.history import State
from receiver.state.store import Store
from receiver.status import reservation_snapshot


def reserve(
    store: Store,
    settings: Settings,
    trigger: Trigger,
    origin: Origin,
    rollback_id: str,
    plan: Plan,
    peek: bool = False,
) -> Reservation:
    """Dedupe, lock, cooldown, rate limits and global limit in one step; `peek` changes nothing.

    An approval only reserves while its record is still pending: one approval wins.
    """
    mode = ReserveMode.PEEK if peek else plan.mode
    approving = origin == Origin.APPROVAL
    new_state = {
        ReserveMode.RESERVE: State.RUNNING,
        ReserveMode.HOLD: State.SKIPPED if approving else "held",
        ReserveMode.PEEK: "",
    }[mode]
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
        expect_state=State.PENDING_APPROVAL if approving else "",
        new_state=new_state,
    )
    if result.reason == "not_pending":
        raise Conflict(f"rollback {rollback_id} is not pending (it is {result.detail})")
    reservation = reservation_from(result.reason, result.detail, settings)
    if peek:  # explain shows each of the script's checks, read one by one
        return replace(reservation, snapshot=reservation_snapshot(settings, store, trigger.service))
    return reservation
