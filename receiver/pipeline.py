"""The pipeline: every way into the receiver follows one path.

    gather facts -> decide -> reserve -> record -> start / hold / announce

`Engine` has one method per entry (an alert, an explain, a manual rollback, an
approval). Each names where the rollback comes from (an `Origin`, which picks
the checks that apply) and goes through `_decide` (gather, decide, reserve)
and then records and acts. Approvals, the runner, the sweeper, status reads
and the audit trail live in their own modules beside this one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from receiver import approvals, metrics, status
from receiver.act.dispatch import Dispatcher, Stabilizer
from receiver.config import Settings
from receiver.decide.policy import (
    Facts,
    Plan,
    Reservation,
    ReserveMode,
    Trigger,
    Verdict,
    classify,
    decide,
    explain,
    origins_of,
    reservation_from,
    resolve_target,
    settle,
)
from receiver.decide.vocabulary import SAFETY_REASONS, Decision, Origin, Reason, SkipReason
from receiver.errors import Conflict, StoreUnavailable
from receiver.gathering import SilenceCheck, check_silence, inspect_target
from receiver.intake.payload import Alert
from receiver.records import ManualRequest, Outcome, manual_trigger, new_record, trigger_of
from receiver.runner import ActionFactory, Preparation, Runner, Tell
from receiver.state.audit import recent_actions, record_action
from receiver.state.history import RollbackRecord, State, iso, new_id
from receiver.state.store import Store
from receiver.tell.base import BLOCKED_EMERGENCY, ESCALATION
from receiver.tell.events import event_for

log = logging.getLogger("receiver.pipeline")


@dataclass(frozen=True)
class Step:
    """Where one trigger stands after deciding and reserving."""

    trigger: Trigger
    origin: Origin
    rollback_id: str
    request: ManualRequest | None
    facts: Facts
    verdict: Verdict
    prep: Preparation | None  # the job and backends, once a check needed them


class Engine:
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
        self.runner = Runner(store, settings.lock_lease_seconds, tell, stabilize, max_workers)
        self.notifications: Any = None  # the channels' owner, closed by the CLI at exit

    # -- the entries ---------------------------------------------------------------------

    def handle_alert(self, alert: Alert) -> Outcome:
        """An alert from Alertmanager or `monitor`: decide it and act on the decision."""
        trigger = classify(alert, self.settings)
        if trigger.tier is not None and not alert.firing:
            approvals.cancel_on_resolve(self.store, self.tell, trigger)
        return self._act(self._decide(trigger, Origin.ALERT, new_id()), "alertmanager")

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
        verdict = step.verdict
        record_action(
            self.store,
            actor,
            "manual_rollback",
            rollback_id=outcome.rollback_id,
            service=request.service,
            decision=verdict.decision,
            reason=verdict.reason,
            force=request.force,
            dry_run=request.dry_run,
        )
        record = self.store.get_record(step.rollback_id) if outcome.rollback_id else None
        if record is None or (
            verdict.decision == Decision.SKIPPED and verdict.reason != SkipReason.DRY_RUN
        ):
            detail = next((c.detail for c in verdict.checks if not c.passed), "")
            raise Conflict(f"rollback of {request.service} refused: {verdict.reason} ({detail})")
        return outcome, record

    def approve(self, rollback_id: str, actor: str) -> RollbackRecord:
        """Approve a pending rollback: its checks run again (approval origin), then it runs."""
        record = approvals.pending(self.store, rollback_id)
        step = self._decide(trigger_of(record), Origin.APPROVAL, rollback_id)
        verdict = step.verdict
        dry_run = verdict.reason == SkipReason.DRY_RUN
        if verdict.decision != Decision.ROLLBACK and not dry_run:
            raise Conflict(f"approval of {rollback_id} blocked: {verdict.reason}")
        approvals.approved(self.store, record, actor)
        record.checks = [dict(c) for c in explain(verdict)]
        if dry_run:
            record.state, record.decision, record.reason = (
                State.SKIPPED,
                Decision.SKIPPED,
                "dry_run",
            )
            record.finished_at = iso()
            self.store.save_record(record)
            metrics.SKIPPED.labels(record.service, SkipReason.DRY_RUN).inc()
            return record
        record.decision, record.reason, record.actor = Decision.ROLLBACK, Reason.PASSED, actor
        log.info(
            "rollback approved and starting",
            extra={"rollback_id": rollback_id, "actor": actor, "service": record.service},
        )
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
        duplicate_of = None
        if trigger.tier is not None and trigger.alert.firing and origin in origins_of("duplicate"):
            duplicate_of = self.store.episode_owner(trigger.episode)
        facts = Facts(
            now=datetime.now(UTC),
            target=resolve_target(trigger, self.settings),
            duplicate_of=duplicate_of,
            dry_run=bool(request and request.dry_run),
        )
        prep = None
        verdict = decide(trigger, facts, self.settings, origin)
        for _ in range(2):  # one round per costly fact
            if verdict.needs is None:
                break
            if verdict.needs == "silenced":
                facts = check_silence(self.silences, trigger, facts)
            elif verdict.needs == "target_facts" and facts.target is not None:
                prep = Preparation.of(
                    self.settings,
                    self.store,
                    self.build_actions,
                    trigger,
                    facts.target,
                    rollback_id,
                    request,
                )
                facts = inspect_target(prep, trigger, facts)
            verdict = decide(trigger, facts, self.settings, origin)
        if verdict.plan is not None:
            reservation = self._reserve(trigger, origin, rollback_id, verdict.plan, peek)
            verdict = settle(verdict, reservation)
        assert verdict.complete, f"decision did not converge: needs {verdict.needs}"
        return Step(trigger, origin, rollback_id, request, facts, verdict, prep)

    def _reserve(
        self, trigger: Trigger, origin: Origin, rollback_id: str, plan: Plan, peek: bool
    ) -> Reservation:
        """The atomic reservation the plan asks for (state/reservation.py RESERVE_SCRIPT)."""
        mode = ReserveMode.PEEK if peek else plan.mode
        approving = origin == Origin.APPROVAL
        new_state = {
            ReserveMode.RESERVE: State.RUNNING,
            ReserveMode.HOLD: State.SKIPPED if approving else "held",
            ReserveMode.PEEK: "",
        }[mode]
        s = self.settings
        result = self.store.reserve(
            service=trigger.service,
            rollback_id=rollback_id,
            episode=trigger.episode if plan.claims_episode else None,
            mode=mode,
            force=plan.force,
            lease_seconds=s.lock_lease_seconds,
            cooldown_minutes=s.cooldown_minutes,
            max_hour=s.max_rollbacks_per_hour,
            max_day=s.max_rollbacks_per_day,
            max_concurrent=s.max_concurrent_rollbacks,
            expect_state=State.PENDING_APPROVAL if approving else "",
            new_state=new_state,
        )
        if result.reason == "not_pending":
            raise Conflict(f"rollback {rollback_id} is not pending (it is {result.detail})")
        return reservation_from(result.reason, result.detail, s)

    # -- record -> start / hold / announce --------------------------------------------------

    def _act(self, step: Step, actor: str) -> Outcome:
        """Count and log the decision, write its record, then start, hold or announce it."""
        trigger, verdict, rollback_id = step.trigger, step.verdict, step.rollback_id
        metrics.DECISIONS.labels(verdict.decision, verdict.reason).inc()
        extra = {
            "service": trigger.service,
            "fingerprint": trigger.fingerprint,
            "tier": trigger.tier,
            "alertname": trigger.alertname,
            "decision": verdict.decision,
            "reason": verdict.reason,
        }
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
            self.store.create_record(record)
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

    # -- reads and lifecycle ------------------------------------------------------------

    def status(self, service: str) -> dict[str, Any]:
        return status.service_status(self.settings, self.store, self.silences, service)

    def statuses(self, service: str | None = None) -> list[dict[str, Any]]:
        """The status of one service, or of every configured or seen service."""
        names = [service] if service else status.known_services(self.settings, self.store)
        return [self.status(name) for name in names]

    def list_records(self, service: str | None = None, limit: int = 50) -> list[RollbackRecord]:
        return status.list_records(self.store, service, limit)

    def get_record(self, rollback_id: str) -> RollbackRecord:
        return status.get_record(self.store, rollback_id)

    def audit(self, actor: str, action: str, **details: Any) -> None:
        record_action(self.store, actor, action, **details)

    def audit_trail(self, limit: int = 50) -> list[dict[str, Any]]:
        return recent_actions(self.store, limit)

    def ready(self) -> bool:
        return self.store.ping()

    def gauges(self) -> tuple[dict[str, int], dict[tuple[str, str], float]]:
        """The two Redis-backed gauges (rollback_in_progress, last transition times)."""
        return self.store.gauges(set(self.settings.services))

    @property
    def dispatcher(self) -> Dispatcher:
        return self.runner.dispatcher

    def wait_idle(self, timeout: float) -> bool:
        return self.runner.wait_idle(timeout)

    def shutdown(self, timeout: float) -> None:
        self.runner.shutdown(timeout)


__all__ = ["Engine", "ManualRequest", "Outcome", "StoreUnavailable"]
