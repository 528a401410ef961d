"""The sweeper: reaps expired leases, expires old approvals, acts on passed veto deadlines,
tells the escalations a closed burst window held."""

from __future__ import annotations

import logging

from receiver import approvals, metrics
from receiver.act.factory import argocd_client
from receiver.clients.argocd import ArgoCDError
from receiver.decide.vocabulary import SkipReason
from receiver.errors import Conflict, NotFound, ReceiverError
from receiver.periodic import Periodic
from receiver.pipeline import Engine
from receiver.state import autosync
from receiver.state.history import StageName, State, iso
from receiver.tell.base import INTERRUPTED
from receiver.tell.digest import tell_closed_bursts
from receiver.tell.events import event_for

log = logging.getLogger("receiver.sweeper")


def sweep_once(engine: Engine) -> dict[str, int]:
    """One sweep; any replica (and `monitor`) may run it: each step is atomic in the store."""
    store = engine.store
    counts = {"interrupted": 0, "expired": 0, "vetoed": 0, "digests": 0}
    for service, rollback_id in store.reap_expired():
        counts["interrupted"] += _interrupt(engine, service, rollback_id)
    for rollback_id in store.due(approvals.VETO):
        try:
            engine.approve(rollback_id, "veto-window")  # removes the deadline once started
            counts["vetoed"] += 1
        except NotFound:
            store.remove_deadline(approvals.VETO, rollback_id)
        except Conflict as exc:
            if store.record_state(rollback_id) != State.PENDING_APPROVAL:
                store.remove_deadline(approvals.VETO, rollback_id)  # rejected, expired, taken
            log.info(
                "veto deadline passed but the rollback did not start",
                extra={"rollback_id": rollback_id, "reason": exc.message},
            )
    for rollback_id in store.due(approvals.PENDING):
        store.remove_deadline(approvals.PENDING, rollback_id)
        try:
            approvals.close(
                store,
                engine.tell,
                rollback_id,
                "receiver",
                State.EXPIRED,
                SkipReason.APPROVAL_EXPIRED,
            )
            counts["expired"] += 1
        except (Conflict, NotFound):
            pass
    counts["digests"] = tell_closed_bursts(engine.bursts, engine.tell)
    recheck_autosync(engine)
    return counts


AUTOSYNC_RECHECK_SECONDS = 60
AUTOSYNC_RECHECK_MAX_APPS = 50  # Argo CD reads per recheck, bounded


def recheck_autosync(engine: Engine) -> list[str]:
    """Forget the apps whose automated sync is on again; once a minute across replicas."""
    store, settings = engine.store, engine.settings
    apps = autosync.disabled_apps(store)
    if not apps or not settings.argocd_server:
        return []
    if not store.claim_once("autosync-recheck", AUTOSYNC_RECHECK_SECONDS):
        return []
    client = argocd_client(settings)
    reenabled = []
    for app in sorted(apps)[:AUTOSYNC_RECHECK_MAX_APPS]:
        try:
            on = client.get_app(app, timeout=5.0, attempts=1).autosync
        except ArgoCDError as exc:
            log.warning(
                "cannot read Argo CD app to recheck auto-sync",
                extra={"app": app, "error": str(exc)},
            )
            continue
        if on and autosync.clear(store, app):
            log.info("Argo CD auto-sync is on again", extra={"app": app})
            reenabled.append(app)
    return reenabled


def _interrupt(engine: Engine, service: str, rollback_id: str) -> int:
    """Mark a reaped rollback `interrupted`, count and tell it; 0 when it had already ended."""
    store = engine.store
    record = store.get_record(rollback_id) if rollback_id else None
    log.error(
        "rollback lease expired mid-run: marked interrupted",
        extra={"rollback_id": rollback_id, "service": service},
    )
    if record is None or record.state != State.RUNNING:
        return 0
    record.state, record.finished_at = State.INTERRUPTED, iso()
    record.failed_stage = StageName.INTERRUPTED
    record.error = "lease expired: the process running it stopped (crash or kill)"
    if not store.save_record(record, expect=(State.RUNNING,)):
        return 0
    store.mark_transition(service, State.INTERRUPTED)
    metrics.FAILED.labels(service, record.tier, StageName.INTERRUPTED).inc()
    engine.tell(event_for(record, INTERRUPTED))
    return 1


class Sweeper(Periodic):
    """Every REAPER_INTERVAL_SECONDS, one sweep, in a daemon thread of the serving process."""

    name = "sweeper"

    def __init__(self, engine: Engine, interval: float) -> None:
        super().__init__(interval)
        self.engine = engine

    def tick(self) -> None:
        try:
            sweep_once(self.engine)
        except ReceiverError as exc:
            log.warning("sweep skipped", extra={"error": exc.message})
        except Exception:
            log.exception("sweep failed")
