"""The pipeline: every way into the receiver follows one path.

    gather facts -> decide -> reserve -> record -> start / hold / announce

`Engine` has one method per entry (an alert, an explain, a manual rollback, an approval).
Each names where the rollback comes from (an `Origin`, which picks the checks that apply)
and goes through `_decide` (gather, decide, reserve) and then records and acts. Approvals,
the runner, the sweeper, status reads and the audit trail live in modules beside this one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from receiver import approvals, metrics, status
from receiver.act.dispatch import Stabilizer
from receiver.config import Settings
from receiver.decide.policy import Facts, Trigger, Verdict, classify, decide, explain, settle
from receiver.decide.vocabulary import SAFETY_REASONS, Decision, Origin, Reason, SkipReason
from receiver.errors import Conflict, StoreUnavailable
from receiver.gathering import SilenceCheck, check_silence, first_facts, inspect_target
from receiver.intake.payload import Alert
from receiver.records import (
    ManualRequest,
    Outcome,
    log_fields,
    manual_audit,
    manual_trigger,
    new_record,
    trigger_of,
)
from receiver.reserving import reserve
from receiver.runner import ActionFactory, Preparation, Runner, Tell
from receiver.state import skips
from receiver.state.audit import record_action
from receiver.state.history import RollbackRecord, new_id
from receiver.state.store import Store
from receiver.status import StatusReads
from receiver.tell.base import BLOCKED_EMERGENCY, ESCALATION
from receiver.tell.events import event_for

log = logging.getLogger("receiver.pipeline")


@dataclass(frozen=True)
class Step:
    """Where one trigger stands after deciding and reserving."""

    trigger: Trigger
    rollback_id: str
    request: ManualRequest | None
    facts: Facts
    verdict: Verdict
    prep: Preparation | None  # the job and backends, once a check needed them


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
        self.tell, self.silences = tell, silences
        self.runner = Runner(settings, store, build_actions, tell, stabilize, max_workers)
        self.notifications: Any = None  # the channels' owner, closed by the CLI at exit

    # -- the entries ---------------------------------------------------------------------

    def handle_alert(self, alert: Alert, actor: str = "alertmanager") -> Outcome:
        """An alert from Alertmanager or `monitor` (the actor): decide it and act on it."""
        trigger = classify(alert, self.settings)
        if trigger.tier is not None and not alert.firing:
            approvals.cancel_on_resolve(self.store, self.tell, trigger)
        return self._act(self._decide(trigger, Origin.ALERT, new_id()), actor)

    def explain(self, alert: Alert) -> Outcome:
        """Every check an alert would go through, with its result; acts on nothing."""
        step = self._decide(classify(alert, self.settings), Origin.ALERT, new_id(), peek=True)
        return Outcome.of(step.trigger, step.verdict, None, with_checks=True)

    def manual_rollback(self, request: ManualRequest, actor: str) -> tuple[Outcome, RollbackRecord]:
        """A human's rollback: lock, cooldown and rate limits apply (force passes the last two)."""
        origin = Origin.MANUAL_FORCE if request.force else Origin.MANUAL
        trigger = manual_trigger(request, status.namespace_of(self.settings, request.service))
        step = self._decide(trigger, origin, new_id(), request=request)
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
        verdict = step.verdict
        dry_run = verdict.reason == SkipReason.DRY_RUN
        if verdict.decision != Decision.ROLLBACK and not dry_run:
            raise Conflict(f"approval of {rollback_id} blocked: {verdict.reason}")
        approvals.approved(self.store, record, explain(verdict), actor)
        if dry_run:
            return approvals.finish_as_dry_run(self.store, record)
        record.decision, record.reason, record.actor = Decision.ROLLBACK, Reason.PASSED, actor
        assert step.prep is not None  # autosync_enabled needed the backends' inspect
        return self.runner.start(record, step.prep, new=False)

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
    ) -> Step:
        """Gather the facts the checks ask for, decide, and make the reservation planned."""
        facts, prep = first_facts(self.store, self.settings, trigger, origin, request), None
        verdict = decide(trigger, facts, self.settings, origin, every=peek)
        for _ in range(2):  # one round per costly fact
            if verdict.needs is None:
                break
            if verdict.needs == "silenced":
                facts = check_silence(self.silences, trigger, facts)
            elif verdict.needs == "target_facts" and facts.target is not None:
                prep = self.runner.prepare(trigger, facts.target, rollback_id, request)
                facts = inspect_target(prep, trigger, facts)
            verdict = decide(trigger, facts, self.settings, origin, every=peek)
        if verdict.plan is not None:
            reservation = reserve(
                self.store, self.settings, trigger, origin, rollback_id, verdict.plan, peek
            )
            verdict = settle(verdict, reservation)
        assert verdict.complete, f"decision did not converge: needs {verdict.needs}"
        return Step(trigger, rollback_id, request, facts, verdict, prep)

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
            metrics.SKIPPED.labels(trigger.service, SkipReason.DUPLICATE).inc()
            extra["rollback_id"] = verdict.rollback_id
            log.info("duplicate delivery of an episode", extra=extra)
            return Outcome.of(trigger, verdict, verdict.rollback_id)
        mode = (step.request.mode if step.request else None) or self.settings.rollback_mode
        record = new_record(trigger, verdict, step.facts, rollback_id, actor, mode, step.request)
        extra["rollback_id"] = rollback_id
        if verdict.decision == Decision.SKIPPED:
            metrics.SKIPPED.labels(trigger.service, verdict.reason).inc()
            kept = skips.record_skip(self.store, record, None if step.request else trigger.episode)
            if kept is not record:  # a repeat of a skipped episode, counted on its record
                return Outcome.of(trigger, verdict, kept.id)
            log.info("rollback skipped", extra=extra)
            if verdict.escalates:
                self.tell(event_for(record, ESCALATION))
            elif trigger.tier == "emergency" and verdict.reason in SAFETY_REASONS:
                self.tell(event_for(record, BLOCKED_EMERGENCY))
        elif verdict.decision == Decision.PENDING_APPROVAL:
            approvals.hold(self.store, self.settings, self.tell, record)
            log.info("rollback pending approval", extra=extra)
        else:
            log.info("rollback starting", extra=extra)
            assert step.prep is not None  # autosync_enabled needed the backends' inspect
            self.runner.start(record, step.prep, new=True)
        return Outcome.of(trigger, verdict, rollback_id)

    # -- lifecycle ----------------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        return self.runner.wait_idle(timeout)

    def shutdown(self, timeout: float) -> None:
        self.runner.shutdown(timeout)


__all__ = ["Engine", "ManualRequest", "Outcome", "StoreUnavailable"]
