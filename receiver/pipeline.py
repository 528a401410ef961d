"""The pipeline: alert -> classify -> decide (gathering facts) -> reserve -> run -> record.

`Engine.handle_alert` is the one short function a reader follows; the
webhook, the admin API, `monitor` and `replay` all go through it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from receiver import metrics
from receiver.act.base import RollbackAction, RollbackJob
from receiver.act.dispatch import Dispatcher, Stabilizer, event_for
from receiver.config import Settings
from receiver.decide.facts import TargetFacts
from receiver.decide.policy import (
    IGNORED,
    PENDING,
    ROLLBACK,
    SKIPPED,
    Decision,
    Facts,
    Reservation,
    Trigger,
    classify,
    decide,
    explain,
    holds_only,
    target_resolution,
    with_fact,
)
from receiver.decide.targets import ServiceTarget
from receiver.errors import ActionError, Conflict, NotFound, StoreUnavailable
from receiver.intake.payload import Alert
from receiver.state.history import RollbackRecord, iso, new_id
from receiver.state.reservation import ReserveResult
from receiver.state.store import Store
from receiver.tell.base import (
    APPROVAL_EXPIRED,
    BLOCKED_EMERGENCY,
    ESCALATION,
    PENDING_APPROVAL,
    REJECTED,
    STARTED,
    Event,
)

log = logging.getLogger("receiver.pipeline")

ActionFactory = Callable[[Settings, ServiceTarget, str], Sequence[RollbackAction]]
SilenceCheck = Callable[[dict[str, str]], "tuple[bool, str]"]  # (silenced, note); raises on error
Tell = Callable[[Event], None]

# Reasons that hold back an emergency: that is news even though nothing happened.
SAFETY_REASONS = (
    "blackout",
    "silenced",
    "locked",
    "cooldown",
    "rate_limit_hour",
    "rate_limit_day",
    "tier_disabled",
    "disabled",
    "autosync_enabled",
    "no_target",
)


@dataclass(frozen=True)
class Outcome:
    """One alert's answer in the webhook's response."""

    fingerprint: str
    alertname: str
    service: str
    decision: str
    reason: str
    rollback_id: str | None
    checks: tuple[dict[str, object], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "service": self.service,
            "decision": self.decision,
            "reason": self.reason,
            "rollback_id": self.rollback_id,
        }


@dataclass(frozen=True)
class ManualRequest:
    service: str
    mode: str | None = None
    target_commit: str | None = None
    target_revision: str | None = None
    reason: str = "manual rollback"
    dry_run: bool = False
    force: bool = False


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
        self.settings = settings
        self.store = store
        self.build_actions = build_actions
        self.tell = tell
        self.silences = silences
        self.dispatcher = Dispatcher(store, settings.lock_lease_seconds, tell, stabilize)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rollback")
        self._running: set[Future[RollbackRecord]] = set()
        self._lock = threading.Lock()

    # -- the pipeline -------------------------------------------------------------------

    def handle_alert(self, alert: Alert, *, explain_only: bool = False) -> Outcome:
        """Classify, decide (gathering facts as the checks need them), then act on it."""
        trigger = classify(alert, self.settings)
        if trigger.tier is not None and not alert.firing and not explain_only:
            self._cancel_pending(trigger)
        rollback_id = new_id()
        decision, facts = self._decide(trigger, rollback_id, explain_only=explain_only)
        checks = tuple(explain(decision))
        if explain_only:
            return self._outcome(trigger, decision, None, checks)
        return self._act(trigger, decision, facts, rollback_id, checks)

    def _decide(
        self,
        trigger: Trigger,
        rollback_id: str,
        *,
        explain_only: bool = False,
        manual: ManualRequest | None = None,
        approving: bool = False,
    ) -> tuple[Decision, Facts]:
        """Run the policy, gathering each fact the first time a check needs it.

        `approving` re-runs a pending rollback's checks: approval itself is not asked
        again, the episode is already recorded, and the reservation only succeeds while
        the record is still pending (one approval wins).
        """
        settings = _without_approval(self.settings) if approving else self.settings
        resolution = target_resolution(trigger, settings)
        facts = Facts(
            now=datetime.now(UTC),
            target=resolution.target,
            target_error=resolution.reason,
            manual=manual is not None,
            force=bool(manual and manual.force),
            dry_run=bool(manual and manual.dry_run),
        )
        if trigger.tier is not None and trigger.alert.firing and not (manual or approving):
            facts = with_fact(facts, duplicate_of=self.store.episode_owner(trigger.episode))
        for _ in range(5):  # at most one round per kind of fact
            decision = decide(trigger, facts, settings)
            if decision.complete:
                return decision, facts
            if decision.needs == "silenced":
                facts = self._check_silence(trigger, facts)
            elif decision.needs == "target_facts":
                facts = self._inspect(trigger, facts, rollback_id, manual)
            else:
                facts = self._reserve(
                    trigger,
                    facts,
                    rollback_id,
                    settings,
                    explain_only=explain_only,
                    manual=manual,
                    approving=approving,
                )
        raise RuntimeError("decision engine did not converge")  # pragma: no cover

    def _check_silence(self, trigger: Trigger, facts: Facts) -> Facts:
        if self.silences is None:
            return with_fact(facts, silenced=False, silence_note="silences not checked")
        try:
            silenced, note = self.silences(dict(trigger.alert.labels))
        except Exception as exc:
            # The contract's one deliberate exception to "in doubt, don't": the delivery
            # left Alertmanager moments ago, so its silence state is fresh enough.
            log.warning(
                "could not ask Alertmanager for silences; proceeding",
                extra={"service": trigger.service, "error": str(exc)},
            )
            return with_fact(
                facts,
                silenced=False,
                silence_note="Alertmanager unreachable; proceeding without re-check",
            )
        return with_fact(facts, silenced=silenced, silence_note=note)

    def _job(
        self,
        trigger: Trigger,
        target: ServiceTarget,
        rollback_id: str,
        manual: ManualRequest | None,
    ) -> RollbackJob:
        mode = (manual.mode if manual and manual.mode else None) or self.settings.rollback_mode
        return RollbackJob(
            rollback_id=rollback_id,
            service=trigger.service,
            namespace=trigger.namespace,
            tier=trigger.tier or "manual",
            target=target,
            mode=mode,
            reason=(manual.reason if manual else f"{trigger.alertname} ({trigger.tier}) fired"),
            automatic=manual is None,
            fingerprint=trigger.fingerprint or None,
            target_commit=(manual.target_commit if manual else None),
            target_revision=(manual.target_revision if manual else None),
            bad_revisions=self.store.bad_revisions(trigger.service),
            rolled_back_to=self.store.restored_revisions(trigger.service),
            dry_run=bool(self.settings.dry_run or (manual and manual.dry_run)),
        )

    def _inspect(
        self, trigger: Trigger, facts: Facts, rollback_id: str, manual: ManualRequest | None
    ) -> Facts:
        assert facts.target is not None
        job = self._job(trigger, facts.target, rollback_id, manual)
        merged = TargetFacts()
        try:
            for action in self.build_actions(self.settings, facts.target, job.mode):
                merged = merged.merge(action.inspect(job))
        except LookupError as exc:  # NoTarget: the configuration lacks a piece this mode needs
            log.warning(
                "no rollback target for this mode",
                extra={"service": trigger.service, "error": str(exc)},
            )
            return with_fact(facts, target_error=str(exc), target_facts=TargetFacts())
        except (ActionError, ValueError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            log.warning(
                "cannot inspect the rollback target; not rolling back",
                extra={"service": trigger.service, "error": message},
            )
            return with_fact(
                facts, target_error=f"cannot inspect target: {message}", target_facts=TargetFacts()
            )
        return with_fact(facts, target_facts=merged)

    def _reserve(
        self,
        trigger: Trigger,
        facts: Facts,
        rollback_id: str,
        settings: Settings,
        *,
        explain_only: bool,
        manual: ManualRequest | None,
        approving: bool,
    ) -> Facts:
        mode = "peek" if explain_only else ("hold" if holds_only(settings, facts) else "reserve")
        if mode == "peek":
            new_state = ""
        elif mode == "reserve":
            new_state = "running"
        else:
            new_state = "skipped" if approving else "held"
        result = self.store.reserve(
            service=trigger.service,
            rollback_id=rollback_id,
            episode=None if (manual or approving) else trigger.episode,
            mode=mode,
            force=facts.force,
            lease_seconds=settings.lock_lease_seconds,
            cooldown_minutes=settings.cooldown_minutes,
            max_hour=settings.max_rollbacks_per_hour,
            max_day=settings.max_rollbacks_per_day,
            max_concurrent=settings.max_concurrent_rollbacks,
            expect_state="pending_approval" if approving else "",
            new_state=new_state,
        )
        if result.reason == "not_pending":
            raise Conflict(f"rollback {rollback_id} is not pending (it is {result.detail})")
        return with_fact(facts, reservation=self._reservation(result))

    def _reservation(self, result: ReserveResult) -> Reservation:
        s = self.settings
        describe: dict[str, Callable[[], str]] = {
            "locked": lambda: f"another rollback ({result.detail}) holds the lock",
            "cooldown": lambda: f"cooldown: {int(result.detail or 0) // 1000} s left",
            "rate_limit_hour": lambda: (
                f"{result.detail} rollback(s) in the last hour "
                f"(MAX_ROLLBACKS_PER_HOUR={s.max_rollbacks_per_hour})"
            ),
            "rate_limit_day": lambda: (
                f"{result.detail} rollback(s) in the last day "
                f"(MAX_ROLLBACKS_PER_DAY={s.max_rollbacks_per_day})"
            ),
            "global_limit": lambda: (
                f"{result.detail} rollbacks already running "
                f"(MAX_CONCURRENT_ROLLBACKS={s.max_concurrent_rollbacks}): "
                "a platform incident, not a deploy?"
            ),
            "duplicate": lambda: f"episode already handled as {result.detail}",
        }
        detail = describe[result.reason]() if result.reason in describe else ""
        return Reservation(
            result.reason,
            rollback_id=result.detail if result.reason == "duplicate" else None,
            detail=detail,
        )

    # -- acting on a decision ------------------------------------------------------------

    def _outcome(
        self,
        trigger: Trigger,
        decision: Decision,
        rollback_id: str | None,
        checks: tuple[dict[str, object], ...] = (),
    ) -> Outcome:
        return Outcome(
            trigger.fingerprint,
            trigger.alertname,
            trigger.service,
            decision.decision,
            decision.reason,
            rollback_id,
            checks,
        )

    def _act(
        self,
        trigger: Trigger,
        decision: Decision,
        facts: Facts,
        rollback_id: str,
        checks: tuple[dict[str, object], ...],
        actor: str = "alertmanager",
        manual: ManualRequest | None = None,
    ) -> Outcome:
        metrics.DECISIONS.labels(decision.decision, decision.reason).inc()
        extra = {
            "service": trigger.service,
            "fingerprint": trigger.fingerprint,
            "decision": decision.decision,
            "reason": decision.reason,
            "tier": trigger.tier,
            "alertname": trigger.alertname,
        }
        if decision.decision == IGNORED:
            log.info("alert ignored", extra={**extra, "rollback_id": None})
            return self._outcome(trigger, decision, None)
        if decision.decision == SKIPPED and decision.reason == "duplicate":
            metrics.SKIPPED.labels(trigger.service, "duplicate").inc()
            log.info(
                "duplicate delivery of an episode",
                extra={**extra, "rollback_id": decision.rollback_id},
            )
            return self._outcome(trigger, decision, decision.rollback_id)
        record = self._new_record(trigger, decision, facts, rollback_id, checks, actor, manual)
        if decision.decision == SKIPPED:
            metrics.SKIPPED.labels(trigger.service, decision.reason).inc()
            self.store.create_record(record)
            log.info("rollback skipped", extra={**extra, "rollback_id": rollback_id})
            self._tell_skipped(trigger, decision, record)
        elif decision.decision == PENDING:
            self._hold_for_approval(record)
            log.info("rollback pending approval", extra={**extra, "rollback_id": rollback_id})
        else:
            log.info("rollback starting", extra={**extra, "rollback_id": rollback_id})
            self._start(record, trigger, facts, manual)
        return self._outcome(trigger, decision, rollback_id)

    def _new_record(
        self,
        trigger: Trigger,
        decision: Decision,
        facts: Facts,
        rollback_id: str,
        checks: tuple[dict[str, object], ...],
        actor: str,
        manual: ManualRequest | None,
    ) -> RollbackRecord:
        state = {ROLLBACK: "running", PENDING: "pending_approval"}.get(decision.decision, "skipped")
        alert = trigger.alert
        tf = facts.target_facts or TargetFacts()
        record = RollbackRecord(
            id=rollback_id,
            service=trigger.service,
            namespace=trigger.namespace,
            tier=trigger.tier or "manual",
            decision=decision.decision,
            reason=decision.reason,
            state=state,
            created_at=iso(),
            actor=actor,
            mode=(manual.mode if manual and manual.mode else self.settings.rollback_mode),
            automatic=manual is None,
            dry_run=decision.reason == "dry_run",
            episode=None if manual else trigger.episode,
            trigger={
                "labels": dict(alert.labels),
                "annotations": dict(alert.annotations),
                "fingerprint": alert.fingerprint,
                "startsAt": alert.starts_at,
                "generatorURL": alert.generator_url,
                "consumed": _consumed(alert),
            },
            rolled_back_from={"commit": tf.current} if tf.current else {},
            target={"commit": tf.target} if tf.target else {},
            checks=[dict(c) for c in checks],
            finished_at=iso() if state == "skipped" else None,
        )
        if manual is not None:
            record.target.update(
                {
                    k: v
                    for k, v in (
                        ("commit", manual.target_commit),
                        ("revision", manual.target_revision),
                    )
                    if v
                }
            )
            record.note(actor, "manual_rollback", reason=manual.reason, force=manual.force)
        return record

    def _tell_skipped(self, trigger: Trigger, decision: Decision, record: RollbackRecord) -> None:
        if decision.escalates:
            self.tell(event_for(record, ESCALATION))
        elif trigger.tier == "emergency" and decision.reason in SAFETY_REASONS:
            self.tell(event_for(record, BLOCKED_EMERGENCY))

    def _hold_for_approval(self, record: RollbackRecord) -> None:
        now = time.time()
        record.expires_at = iso(now + self.settings.approval_timeout_minutes * 60)
        if record.tier == "emergency" and self.settings.emergency_veto_minutes:
            record.veto_at = iso(now + self.settings.emergency_veto_minutes * 60)
        self.store.create_record(record)
        self.store.add_deadline(
            "pending", record.id, now + self.settings.approval_timeout_minutes * 60
        )
        if record.veto_at:
            self.store.add_deadline(
                "veto", record.id, now + (self.settings.emergency_veto_minutes or 0) * 60
            )
        event = event_for(record, PENDING_APPROVAL)
        base = self.settings.public_url or self.settings.receiver_url
        event.links["approve"] = f"{base}/api/v1/rollbacks/{record.id}/approve"
        event.details["approve_cli"] = f"rollback-receiver approve {record.id}"
        event.details["expires_at"] = record.expires_at
        event.details["veto_at"] = record.veto_at
        self.tell(event)

    def _start(
        self, record: RollbackRecord, trigger: Trigger, facts: Facts, manual: ManualRequest | None
    ) -> None:
        """The reservation is ours: record, count, tell, and run it off the request thread."""
        assert facts.target is not None
        job = self._job(trigger, facts.target, record.id, manual)
        record.state = "running"
        self.store.create_record(record)
        self.store.mark_transition(record.service, "running")
        metrics.STARTED.labels(record.service, record.tier).inc()
        self.tell(event_for(record, STARTED))
        self.submit(record, job)

    def submit(self, record: RollbackRecord, job: RollbackJob) -> Future[RollbackRecord]:
        try:
            actions = list(self.build_actions(self.settings, job.target, job.mode))
        except Exception as exc:
            actions = [_Broken(str(exc))]
        future = self._executor.submit(self.dispatcher.run, record, job, actions)
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

    # -- manual rollbacks, approvals, sweeping --------------------------------------------

    def manual_rollback(self, request: ManualRequest, actor: str) -> tuple[Outcome, RollbackRecord]:
        """A human's rollback: lock, cooldown and rate limits apply (force passes the last two)."""
        alert = Alert(
            status="firing",
            labels={"service": request.service, "alertname": "Manual"},
            annotations={},
            starts_at=iso(),
            ends_at="",
            generator_url="",
            fingerprint="",
        )
        trigger = Trigger(
            alert=alert,
            service=request.service,
            namespace=self._namespace(request.service),
            tier="manual",
        )
        rollback_id = new_id()
        decision, facts = self._decide(trigger, rollback_id, manual=request)
        outcome = self._act(
            trigger,
            decision,
            facts,
            rollback_id,
            tuple(explain(decision)),
            actor=actor,
            manual=request,
        )
        self.audit(
            actor,
            "manual_rollback",
            rollback_id=outcome.rollback_id,
            service=request.service,
            decision=decision.decision,
            reason=decision.reason,
            force=request.force,
            dry_run=request.dry_run,
        )
        record = self.store.get_record(rollback_id) if outcome.rollback_id else None
        if record is None or (decision.decision == SKIPPED and decision.reason != "dry_run"):
            detail = next((c.detail for c in decision.checks if not c.passed), "")
            raise Conflict(f"rollback of {request.service} refused: {decision.reason} ({detail})")
        return outcome, record

    def audit(self, actor: str, action: str, **details: Any) -> None:
        """One operator action into the audit trail (Redis) and the log."""
        entry = {"at": iso(), "actor": actor, "action": action, **details}
        self.store.add_audit(entry)
        log.info(f"audit: {action}", extra={"audit": True, **entry})

    def _namespace(self, service: str) -> str:
        target = self.settings.target_for(service)
        return target.namespace if target else self.settings.namespace

    def approve(self, rollback_id: str, actor: str) -> RollbackRecord:
        """Approve a pending rollback: the checks from blackout on run again, then it runs."""
        record = self._pending(rollback_id)
        trigger = Trigger(
            alert=_alert_of(record),
            service=record.service,
            namespace=record.namespace,
            tier=record.tier,
        )
        decision, facts = self._decide(trigger, rollback_id, approving=True)
        if decision.decision != ROLLBACK and decision.reason != "dry_run":
            raise Conflict(f"approval of {rollback_id} blocked: {decision.reason}")
        record.note(actor, "approve")
        self.audit(actor, "approve", rollback_id=rollback_id, service=record.service)
        record.checks = [dict(c) for c in explain(decision)]
        self.store.remove_deadline("pending", rollback_id)
        self.store.remove_deadline("veto", rollback_id)
        if decision.reason == "dry_run":
            record.state, record.decision, record.reason = "skipped", SKIPPED, "dry_run"
            record.finished_at = iso()
            self.store.save_record(record)
            metrics.SKIPPED.labels(record.service, "dry_run").inc()
            return record
        record.decision, record.reason, record.actor = ROLLBACK, "passed", actor
        assert facts.target is not None
        job = self._job(trigger, facts.target, rollback_id, None)
        record.state = "running"
        self.store.save_record(record)
        self.store.mark_transition(record.service, "running")
        metrics.STARTED.labels(record.service, record.tier).inc()
        log.info(
            "rollback approved and starting",
            extra={"rollback_id": rollback_id, "actor": actor, "service": record.service},
        )
        self.tell(event_for(record, STARTED))
        answer = RollbackRecord.from_json(record.to_json())  # as it starts; the runner goes on
        self.submit(record, job)
        return answer

    def _pending(self, rollback_id: str) -> RollbackRecord:
        record = self.store.get_record(rollback_id)
        if record is None:
            raise NotFound(f"no rollback {rollback_id}")
        if record.state != "pending_approval":
            raise Conflict(f"rollback {rollback_id} is not pending (it is {record.state})")
        return record

    def reject(
        self, rollback_id: str, actor: str, state: str = "rejected", reason: str = "rejected"
    ) -> RollbackRecord:
        """Reject (or expire) a pending rollback; a second call answers 409."""
        record = self._pending(rollback_id)
        record.state, record.decision, record.reason = state, SKIPPED, reason
        record.finished_at = iso()
        record.note(actor, "reject" if state == "rejected" else state)
        if not self.store.save_record(record, expect=("pending_approval",)):
            raise Conflict(
                f"rollback {rollback_id} is not pending "
                f"(it is {self.store.record_state(rollback_id)})"
            )
        self.store.remove_deadline("pending", rollback_id)
        self.store.remove_deadline("veto", rollback_id)
        self.audit(
            actor,
            "reject" if state == "rejected" else state,
            rollback_id=rollback_id,
            service=record.service,
            reason=reason,
        )
        if reason in metrics.SKIP_REASONS:
            metrics.SKIPPED.labels(record.service, reason).inc()
        metrics.DECISIONS.labels(SKIPPED, reason).inc()
        log.info(
            f"pending rollback {state}",
            extra={
                "rollback_id": rollback_id,
                "actor": actor,
                "service": record.service,
                "reason": reason,
            },
        )
        self.tell(event_for(record, REJECTED if state == "rejected" else APPROVAL_EXPIRED, reason))
        return record

    def _cancel_pending(self, trigger: Trigger) -> None:
        """A resolved alert cancels its pending rollback."""
        owner = self.store.episode_owner(trigger.episode)
        if owner and self.store.record_state(owner) == "pending_approval":
            with contextlib.suppress(Conflict):  # approved or rejected meanwhile
                self.reject(owner, "alertmanager", state="expired", reason="resolved")

    def sweep(self) -> dict[str, int]:
        """Reap expired leases, expire old approvals, act on passed veto deadlines."""
        counts = {"interrupted": 0, "expired": 0, "vetoed": 0}
        for service, rollback_id in self.store.reap_expired():
            counts["interrupted"] += self._interrupt(service, rollback_id)
        for rollback_id in self.store.due("veto"):
            self.store.remove_deadline("veto", rollback_id)
            try:
                self.approve(rollback_id, "veto-window")
                counts["vetoed"] += 1
            except (Conflict, NotFound) as exc:
                log.info(
                    "veto deadline passed but the rollback did not start",
                    extra={"rollback_id": rollback_id, "reason": exc.message},
                )
        for rollback_id in self.store.due("pending"):
            self.store.remove_deadline("pending", rollback_id)
            try:
                self.reject(rollback_id, "receiver", state="expired", reason="approval_expired")
                counts["expired"] += 1
            except (Conflict, NotFound):
                pass
        return counts

    def _interrupt(self, service: str, rollback_id: str) -> int:
        record = self.store.get_record(rollback_id) if rollback_id else None
        log.error(
            "rollback lease expired mid-run: marked interrupted",
            extra={"rollback_id": rollback_id, "service": service},
        )
        if record is None or record.state != "running":
            return 0
        record.state, record.finished_at = "interrupted", iso()
        record.failed_stage = "interrupted"
        record.error = "lease expired: the process running it stopped (crash or kill)"
        if not self.store.save_record(record, expect=("running",)):
            return 0
        self.store.mark_transition(service, "interrupted")
        metrics.FAILED.labels(service, record.tier, "interrupted").inc()
        self.tell(event_for(record, "interrupted"))
        return 1

    # -- reads for the API ---------------------------------------------------------------

    def status(self, service: str) -> dict[str, Any]:
        from receiver.decide.blackout import active_window, next_occurrences

        now = datetime.now(UTC)
        counts = self.store.window_counts(service)
        last = counts["last_start"]
        cooldown_left = 0.0
        if last is not None:
            cooldown_left = max(0.0, last + self.settings.cooldown_minutes * 60 - time.time())
        windows = self.settings.blackout_windows
        active = active_window(windows, now)
        upcoming = next_occurrences(windows, now, 1)
        records = self.store.list_records(service, 1)
        return {
            "service": service,
            "enabled": self.settings.rollback_enabled,
            "locked_by": self.store.lock_owner(service),
            "cooldown_seconds_left": round(cooldown_left),
            "rollbacks_last_hour": counts["hour"],
            "rollbacks_last_day": counts["day"],
            "limits": {
                "per_hour": self.settings.max_rollbacks_per_hour,
                "per_day": self.settings.max_rollbacks_per_day,
                "concurrent": self.settings.max_concurrent_rollbacks,
            },
            "blackout": {
                "active": active.describe() if active else None,
                "next": [iso(s.timestamp()) for s, _e, _w in upcoming],
                "silence": self._silence_of(service),
            },
            "last_rollback": records[0].to_dict() if records else None,
        }

    def _silence_of(self, service: str) -> str | None:
        """The Alertmanager silence that would hold this service's triggers now, if any."""
        if self.silences is None:
            return None
        labels = {
            "service": service,
            "namespace": self._namespace(service),
            "rollback_tier": "emergency",
            "alertname": "TriggerEmergencyRollback",
        }
        try:
            silenced, note = self.silences(labels)
        except Exception as exc:
            return f"unknown: Alertmanager unreachable ({exc.__class__.__name__})"
        return note if silenced else None


class _Broken(RollbackAction):
    """Stands in when the backends cannot even be built: fails the first stage clearly."""

    stage = "gitops"

    def __init__(self, message: str) -> None:
        self.message = message

    def inspect(self, job: RollbackJob) -> TargetFacts:
        raise ActionError(self.stage, self.message)

    def execute(self, job: RollbackJob, ctx: Any) -> None:
        raise ActionError(self.stage, self.message)


def _alert_of(record: RollbackRecord) -> Alert:
    trig = record.trigger
    return Alert(
        status="firing",
        labels=dict(trig.get("labels", {})),
        annotations=dict(trig.get("annotations", {})),
        starts_at=str(trig.get("startsAt", "")),
        ends_at="",
        generator_url=str(trig.get("generatorURL", "")),
        fingerprint=str(trig.get("fingerprint", "")),
    )


def _without_approval(settings: Settings) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, require_approval=False)


def _consumed(alert: Alert) -> float | None:
    """Budget consumed, from the alert's `consumed` annotation or label when the rule sets it."""
    for source in (alert.annotations, alert.labels):
        raw = source.get("budget_consumed") or source.get("consumed")
        if raw:
            try:
                return float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
            except ValueError:
                return None
    return None


__all__ = ["Engine", "ManualRequest", "Outcome", "StoreUnavailable"]
