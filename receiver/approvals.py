"""Approvals: holding a rollback for approval, closing it (rejected, expired, resolved)."""

from __future__ import annotations

import contextlib
import logging

from receiver import metrics
from receiver.config import Settings
from receiver.decide.policy import Trigger
from receiver.decide.vocabulary import METRIC_SKIP_REASONS, Decision, SkipReason
from receiver.errors import Conflict, NotFound
from receiver.runner import Tell
from receiver.state.audit import record_action
from receiver.state.history import RollbackRecord, State, iso
from receiver.state.store import Store
from receiver.tell.base import APPROVAL_EXPIRED, PENDING_APPROVAL, REJECTED
from receiver.tell.events import approval_request, event_for

log = logging.getLogger("receiver.approvals")

PENDING = "pending"  # deadline kinds in the store
VETO = "veto"


def deadlines(settings: Settings, record: RollbackRecord, now: float) -> tuple[float, float | None]:
    """Set a pending record's expiry (and veto) time; answers both as seconds from `now`."""
    expires_in = settings.approval_timeout_minutes * 60.0
    veto_in = None
    record.expires_at = iso(now + expires_in)
    if record.tier == "emergency" and settings.emergency_veto_minutes:
        veto_in = settings.emergency_veto_minutes * 60.0
        record.veto_at = iso(now + veto_in)
    return expires_in, veto_in


def hold(
    store: Store, settings: Settings, tell: Tell, record: RollbackRecord, recorded: bool = False
) -> None:
    """Write a pending record with its deadlines (unless the reservation did) and ask."""
    if not recorded:
        now = store.now()
        expires_in, veto_in = deadlines(settings, record, now)
        store.create_record(record)
        store.add_deadline(PENDING, record.id, now + expires_in)
        if veto_in is not None:
            store.add_deadline(VETO, record.id, now + veto_in)
    base = settings.public_url or settings.receiver_url
    tell(approval_request(record, PENDING_APPROVAL, base))


def pending(store: Store, rollback_id: str) -> RollbackRecord:
    """The pending record, or 404 / 409."""
    record = store.get_record(rollback_id)
    if record is None:
        raise NotFound(f"no rollback {rollback_id}")
    if record.state != State.PENDING_APPROVAL:
        raise Conflict(f"rollback {rollback_id} is not pending (it is {record.state})")
    return record


def clear_deadlines(store: Store, rollback_id: str) -> None:
    store.remove_deadline(PENDING, rollback_id)
    store.remove_deadline(VETO, rollback_id)


def approved(
    store: Store, record: RollbackRecord, checks: list[dict[str, object]], actor: str
) -> None:
    """Note and audit an approval whose checks passed (the caller clears its deadlines)."""
    record.note(actor, "approve")
    record_action(store, actor, "approve", rollback_id=record.id, service=record.service)
    record.checks = [dict(c) for c in checks]
    log.info(
        "rollback approved",
        extra={"rollback_id": record.id, "actor": actor, "service": record.service},
    )


def finish_as_dry_run(store: Store, record: RollbackRecord) -> RollbackRecord:
    """An approved rollback under DRY_RUN: recorded as the dry run it is, nothing changed."""
    record.state, record.decision, record.reason = State.SKIPPED, Decision.SKIPPED, "dry_run"
    record.finished_at = iso()
    store.save_record(record)
    clear_deadlines(store, record.id)
    metrics.SKIPPED.labels(record.service, SkipReason.DRY_RUN).inc()
    return record


def close(
    store: Store,
    tell: Tell,
    rollback_id: str,
    actor: str,
    state: State = State.REJECTED,
    reason: SkipReason = SkipReason.REJECTED,
) -> RollbackRecord:
    """Reject (or expire) a pending rollback; a second call answers 409."""
    record = pending(store, rollback_id)
    record.state, record.decision, record.reason = state, Decision.SKIPPED, reason
    record.finished_at = iso()
    action = "reject" if state == State.REJECTED else str(state)
    record.note(actor, action)
    if not store.save_record(record, expect=(State.PENDING_APPROVAL,)):
        raise Conflict(
            f"rollback {rollback_id} is not pending (it is {store.record_state(rollback_id)})"
        )
    clear_deadlines(store, rollback_id)
    record_action(
        store, actor, action, rollback_id=rollback_id, service=record.service, reason=reason
    )
    if reason in METRIC_SKIP_REASONS:
        metrics.SKIPPED.labels(record.service, reason).inc()
    metrics.DECISIONS.labels(Decision.SKIPPED, reason).inc()
    log.info(
        f"pending rollback {state}",
        extra={
            "rollback_id": rollback_id,
            "actor": actor,
            "service": record.service,
            "reason": reason,
        },
    )
    tell(event_for(record, REJECTED if state == State.REJECTED else APPROVAL_EXPIRED, reason))
    return record


def cancel_on_resolve(store: Store, tell: Tell, trigger: Trigger) -> None:
    """A resolved alert cancels its pending rollback (a firing one or no trigger: nothing)."""
    if trigger.tier is None or trigger.alert.firing:
        return
    owner, state = store.episode_owner_state(trigger.episode)  # one round trip
    if owner and state == State.PENDING_APPROVAL:
        with contextlib.suppress(Conflict):  # approved or rejected meanwhile
            close(store, tell, owner, "alertmanager", State.EXPIRED, SkipReason.RESOLVED)
