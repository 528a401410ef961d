"""Notification events built from rollback records."""

from __future__ import annotations

from receiver.state.history import RollbackRecord
from receiver.tell.base import Event


def event_for(record: RollbackRecord, kind: str, reason: str | None = None) -> Event:
    """A notification event describing a record."""
    links = {}
    if record.trigger.get("generatorURL"):
        links["alert"] = str(record.trigger["generatorURL"])
    for key in ("commit_url", "pull_request", "argocd_url"):
        value = record.target.get(key) or record.details.get(key)
        if value and str(value).startswith("http"):
            links[key.replace("_url", "")] = str(value)
    consumed = record.trigger.get("consumed")
    restoration = record.restoration()
    return Event(
        kind=kind,
        service=record.service,
        namespace=record.namespace,
        tier=record.tier,
        reason=reason or record.reason,
        rollback_id=record.id,
        episode=record.episode,
        automatic=record.automatic,
        consumed=float(consumed) if isinstance(consumed, int | float) else None,
        from_revision=restoration.rolled_back_from(),
        to_revision=restoration.live_revision(),
        error=record.error,
        stage=record.failed_stage,
        actor=record.actor,
        links=links,
        details={
            "revert_commit": restoration.revert_commit,
            "target_commit": restoration.target_commit,
            "not_effective": record.not_effective,
            "errors_fell": record.details.get("errors_fell"),
        },
    )


def approval_request(record: RollbackRecord, kind: str, receiver_url: str) -> Event:
    """The pending-approval event: how to approve, and until when."""
    event = event_for(record, kind)
    event.links["approve"] = f"{receiver_url}/api/v1/rollbacks/{record.id}/approve"
    event.details["approve_cli"] = f"rollback-receiver approve {record.id}"
    event.details["expires_at"] = record.expires_at
    event.details["veto_at"] = record.veto_at
    return event
