"""The pipeline: every way into the receiver follows one path.

    gather facts -> decide -> reserve -> record -> start / hold / announce

`Engine` has one method per entry (a delivery or `monitor` round, an explain, a manual
rollback, an approval); each names its `Origin` (the checks that apply), gathers facts
(a delivery's concurrently), decides, reserves (in order), records and acts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from receiver import approvals, metrics, status
from receiver.act.dispatch import Stabilizer
from receiver.act.shared_reads import delivery_scope
from receiver.config import Settings
from receiver.decide.policy import Trigger, classify, explain
from receiver.decide.vocabulary import Decision, Origin, Reason, SkipReason
from receiver.errors import Conflict, StoreUnavailable
from receiver.gathering import Gathered, SilenceCheck, Step, gather, gather_all
from receiver.intake.payload import Alert
from receiver.isolation import count_skip, keep_skip, skip_on_error
from receiver.records import (
    ManualRequest,
    Outcome,
    log_fields,
    manual_audit,
    manual_trigger,
    new_record,
    trigger_of,
)
from receiver.reserving import Placing, reserve_verdict
from receiver.runner import ActionFactory, Runner, Tell
from receiver.state.audit import record_action
from receiver.state.bursts import Bursts
from receiver.state.history import RollbackRecord, new_id
from receiver.state.store import Store
from receiver.status import StatusReads
from receiver.tell.digest import announce_skip, escalation_digest

log = logging.getLogger("receiver.pipeline")


class Engine(StatusReads):
    """Decides and runs rollbacks; one per process, shared by every path into it."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        build_actions: ActionFactory,
        tell: Tell = lambda event: None,
        silences: SilenceCheck | None = None,
        stabilize: Stabilizer | None = None,
        max_workers: int = 8,
    ) -> None:
        self.settings, self.store, self.build_actions = settings, store, build_actions
        self.tell, self.silences, self.bursts = tell, silences, Bursts(store)
        self.runner = Runner(settings, store, build_actions, tell, stabilize, max_workers)
        self.notifications: Any = None  # the channels' owner, closed by the CLI at exit
        self._gather = partial(gather, self)

    # -- the entries ---------------------------------------------------------------------

    def handle_delivery(
        self, alerts: Sequence[Alert], actor: str = "alertmanager"
    ) -> list[Outcome]:
        """One delivery (or `monitor` round): facts gathered concurrently, reserved in order."""
        with delivery_scope(), escalation_digest(self.tell, self.store.claim_once, self.bursts):
            gathered = gather_all(alerts, self.settings, self._gather)
            return [self.handle_alert(a, g, actor) for a, g in zip(alerts, gathered, strict=True)]

    def handle_alert(
        self, alert: Alert, gathered: Gathered | None = None, actor: str = "alertmanager"
    ) -> Outcome:
        """An alert from Alertmanager or `monitor` (the actor): decide it and act on it."""
        try:  # an error deciding one alert skips that alert alone, as `internal_error`
            trigger = gathered.trigger if gathered else classify(alert, self.settings)
            approvals.cancel_on_resolve(self.store, self.tell, trigger)
            gathered = gathered or self._gather(trigger, Origin.ALERT, new_id(), None)
            return self._act(self._reserve(gathered, None, False, actor), actor)
        except Exception as exc:
            return self._act(skip_on_error(exc, alert, self.settings, Step), actor)

    def explain(self, alert: Alert) -> Outcome:
        """Every check an alert would go through, with its result; acts on nothing."""
        step = self._decide(classify(alert, self.settings), Origin.ALERT, new_id(), peek=True)
        return Outcome.of(step.trigger, step.verdict, None, with_checks=True)

    def manual_rollback(self, request: ManualRequest, actor: str) -> tuple[Outcome, RollbackRecord]:
        """A human's rollback: lock, cooldown and rate limits apply (force passes the last two)."""
        origin = Origin.MANUAL_FORCE if request.force else Origin.MANUAL
        trigger = manual_trigger(request, status.namespace_of(self.settings, request.service))
        step = self._decide(trigger, origin, new_id(), request=request, actor=actor)
        outcome = self._act(step, actor)
        record_action(self.store, actor, "manual_rollback", **manual_audit(request, outcome))
        record = self.store.get_record(step.rollback_id) if outcome.rollback_id else None
        refused = outcome.decision == Decision.SKIPPED and outcome.reason != SkipReason.DRY_RUN
        if record is None or refused:
            detail = next((c.detail for c in step.verdict.checks if not c.passed), "")
            raise Conflict(f"rollback of {request.service} refused: {outcome.reason} ({detail})")
        return outcome, record

    def approve(self, rollback_id: str, actor: str) -> RollbackRecord:
        """Approve a pending rollback: its checks run again (approval origin), then it runs."""
        record = approvals.pending(self.store, rollback_id)
        step = self._decide(trigger_of(record), Origin.APPROVAL, rollback_id)
        verdict, dry_run = step.verdict, step.verdict.reason == SkipReason.DRY_RUN
        if verdict.decision != Decision.ROLLBACK and not dry_run:
            raise Conflict(f"approval of {rollback_id} blocked: {verdict.reason}")
        approvals.approved(self.store, record, explain(verdict), actor)
        if dry_run:
            return approvals.finish_as_dry_run(self.store, record)
        record.decision, record.reason, record.actor = Decision.ROLLBACK, Reason.PASSED, actor
        assert step.prep is not None  # autosync_enabled needed the backends' inspect
        started = self.runner.start(record, step.prep, new=False)
        approvals.clear_deadlines(self.store, rollback_id)  # the veto deadline, once started
        return started

    def reject(self, rollback_id: str, actor: str) -> RollbackRecord:
        """Reject a pending rollback; a second call answers 409."""
        return approvals.close(self.store, self.tell, rollback_id, actor)

    # -- the one path: gather facts -> decide -> reserve ----------------------------------

    def _decide(
        self,
        trigger: Trigger,
        origin: Origin,
        rollback_id: str,
        request: ManualRequest | None = None,
        peek: bool = False,
        actor: str = "receiver",
    ) -> Step:
        """Gather the facts the checks ask for, decide, and make the reservation planned."""
        gathered = self._gather(trigger, origin, rollback_id, request, every=peek)
        return self._reserve(gathered, request, peek, actor)

    def _reserve(self, g: Gathered, request: ManualRequest | None, peek: bool, actor: str) -> Step:
        """Make the reservation the verdict plans (one at a time, in delivery order)."""
        trigger, rollback_id, facts, verdict, prep = g.unpack()
        record = None
        if verdict.plan is not None:
            asking = Placing(trigger, g.origin, rollback_id, request, actor)
            verdict, record = reserve_verdict(
                self.store, self.settings, asking, verdict, facts, peek
            )
        assert verdict.complete, f"decision did not converge: needs {verdict.needs}"
        return Step(trigger, rollback_id, request, facts, verdict, prep, record)

    # -- record -> start / hold / announce --------------------------------------------------

    def _act(self, step: Step, actor: str) -> Outcome:
        """Count and log the decision, write its record, then start, hold or announce it."""
        trigger, verdict, rollback_id = step.trigger, step.verdict, step.rollback_id
        metrics.DECISIONS.labels(verdict.decision, verdict.reason).inc()
        extra = log_fields(trigger, verdict)
        if verdict.decision == Decision.IGNORED:
            log.info("alert ignored", extra={**extra, "rollback_id": None})
            return Outcome.of(trigger, verdict, None)
        if verdict.reason == SkipReason.DUPLICATE:
            count_skip(trigger, SkipReason.DUPLICATE, self.settings)
            extra["rollback_id"] = verdict.rollback_id
            log.info("duplicate delivery of an episode", extra=extra)
            return Outcome.of(trigger, verdict, verdict.rollback_id)
        mode = (step.request.mode if step.request else None) or self.settings.rollback_mode
        recorded = step.record is not None  # the reservation created it
        record = step.record or new_record(
            trigger, verdict, step.facts, rollback_id, actor, mode, step.request
        )
        extra["rollback_id"] = rollback_id
        if verdict.decision == Decision.SKIPPED:
            kept = record if recorded else keep_skip(self.store, self.settings, step, record)
            if kept is not record:  # a repeat of a skipped episode, counted on its record
                return Outcome.of(trigger, verdict, kept.id)
            log.info("rollback skipped", extra=extra)
            announce_skip(self.tell, trigger.tier, verdict.escalates, record)
        elif verdict.decision == Decision.PENDING_APPROVAL:
            approvals.hold(self.store, self.settings, self.tell, record, recorded)
            log.info("rollback pending approval", extra=extra)
        else:
            log.info("rollback starting", extra=extra)
            assert step.prep is not None  # autosync_enabled needed the backends' inspect
            self.runner.start(record, step.prep, new=not recorded, recorded=recorded)
        return Outcome.of(trigger, verdict, rollback_id)

    # -- lifecycle ----------------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        return self.runner.wait_idle(timeout)

    def shutdown(self, timeout: float) -> None:
        self.runner.shutdown(timeout)


__all__ = ["Engine", "ManualRequest", "Outcome", "StoreUnavailable"]
