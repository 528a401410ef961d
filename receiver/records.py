"""What the entries take and answer (manual requests, outcomes) and the records they write."""

from __future__ import annotations

from dataclasses import dataclass

from receiver.decide.facts import TargetFacts
from receiver.decide.policy import Facts, Trigger, Verdict, explain
from receiver.decide.vocabulary import Decision
from receiver.intake.payload import Alert
from receiver.state.history import RollbackRecord, State, iso


@dataclass(frozen=True)
class ManualRequest:
    """A human's rollback request (POST /api/v1/rollbacks, `rollback-receiver rollback`)."""

    service: str
    mode: str | None = None
    target_commit: str | None = None
    target_revision: str | None = None
    reason: str = "manual rollback"
    dry_run: bool = False
    force: bool = False


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

    @classmethod
    def of(
        cls, trigger: Trigger, verdict: Verdict, rollback_id: str | None, with_checks: bool = False
    ) -> Outcome:
        return cls(
            trigger.fingerprint,
            trigger.alertname,
            trigger.service,
            verdict.decision or "",
            verdict.reason,
            rollback_id,
            tuple(explain(verdict)) if with_checks else (),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "service": self.service,
            "decision": self.decision,
            "reason": self.reason,
            "rollback_id": self.rollback_id,
        }


def log_fields(trigger: Trigger, verdict: Verdict) -> dict[str, object]:
    """The log fields of a decision."""
    return {
        "service": trigger.service,
        "fingerprint": trigger.fingerprint,
        "tier": trigger.tier,
        "alertname": trigger.alertname,
        "decision": verdict.decision,
        "reason": verdict.reason,
    }


def manual_audit(request: ManualRequest, outcome: Outcome) -> dict[str, object]:
    """The audit entry's details of a manual rollback request."""
    return {
        "rollback_id": outcome.rollback_id,
        "service": request.service,
        "decision": outcome.decision,
        "reason": outcome.reason,
        "force": request.force,
        "dry_run": request.dry_run,
    }


def new_record(
    trigger: Trigger,
    verdict: Verdict,
    facts: Facts,
    rollback_id: str,
    actor: str,
    mode: str,
    request: ManualRequest | None,
) -> RollbackRecord:
    """The history record of a decision (not written yet)."""
    state = {
        Decision.ROLLBACK: State.RUNNING,
        Decision.PENDING_APPROVAL: State.PENDING_APPROVAL,
    }.get(verdict.decision or Decision.SKIPPED, State.SKIPPED)
    alert = trigger.alert
    tf = facts.target_facts or TargetFacts()
    record = RollbackRecord(
        id=rollback_id,
        service=trigger.service,
        namespace=trigger.namespace,
        tier=trigger.tier or "manual",
        decision=verdict.decision or Decision.SKIPPED,
        reason=verdict.reason,
        state=state,
        created_at=iso(),
        actor=actor,
        mode=mode,
        automatic=request is None,
        dry_run=verdict.reason == "dry_run",
        episode=None if request else trigger.episode,
        trigger={
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "fingerprint": alert.fingerprint,
            "startsAt": alert.starts_at,
            "generatorURL": alert.generator_url,
            "consumed": budget_consumed(alert),
        },
        rolled_back_from={"commit": tf.current} if tf.current else {},
        target={"commit": tf.target} if tf.target else {},
        checks=[dict(c) for c in explain(verdict)],
        finished_at=iso() if state == State.SKIPPED else None,
    )
    if request is not None:
        wanted = (("commit", request.target_commit), ("revision", request.target_revision))
        record.target.update({k: v for k, v in wanted if v})
        record.note(actor, "manual_rollback", reason=request.reason, force=request.force)
    return record


def manual_trigger(request: ManualRequest, namespace: str) -> Trigger:
    """A manual rollback as a trigger: it has no alert, so a stand-in one names the service."""
    alert = Alert(
        status="firing",
        labels={"service": request.service, "alertname": "Manual"},
        annotations={},
        starts_at=iso(),
        ends_at="",
        generator_url="",
        fingerprint="",
    )
    return Trigger(alert=alert, service=request.service, namespace=namespace, tier="manual")


def trigger_of(record: RollbackRecord) -> Trigger:
    """The trigger a pending record was held for, to decide its approval."""
    trig = record.trigger
    alert = Alert(
        status="firing",
        labels=dict(trig.get("labels", {})),
        annotations=dict(trig.get("annotations", {})),
        starts_at=str(trig.get("startsAt", "")),
        ends_at="",
        generator_url=str(trig.get("generatorURL", "")),
        fingerprint=str(trig.get("fingerprint", "")),
    )
    return Trigger(
        alert=alert, service=record.service, namespace=record.namespace, tier=record.tier
    )


def budget_consumed(alert: Alert) -> float | None:
    """Budget consumed, from the alert's `consumed` annotation or label when the rule sets it."""
    for source in (alert.annotations, alert.labels):
        raw = source.get("budget_consumed") or source.get("consumed")
        if raw:
            try:
                return float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
            except ValueError:
                return None
    return None
