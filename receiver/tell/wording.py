"""Human wording shared by the channels: one title per event kind, one phrase per reason."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from receiver.tell import base

REASONS = {
    "passed": "every safety check passed",
    "approval_required": "REQUIRE_APPROVAL is on",
    "already_rolled_back": "the running revision is one this receiver already rolled back to; "
    "another rollback would not help",
    "no_recent_change": "no deploy inside ROLLBACK_CHANGE_WINDOW to blame",
    "global_limit": "MAX_CONCURRENT_ROLLBACKS reached: several services at once smells of a "
    "platform incident",
    "blackout": "inside a blackout window",
    "silenced": "a silence or freeze in Alertmanager covers it",
    "locked": "another rollback of the service is running",
    "cooldown": "the service was rolled back less than COOLDOWN_MINUTES ago",
    "rate_limit_hour": "MAX_ROLLBACKS_PER_HOUR reached",
    "rate_limit_day": "MAX_ROLLBACKS_PER_DAY reached",
    "disabled": "ROLLBACK_ENABLED is off",
    "tier_disabled": "automatic rollback is off for this tier",
    "autosync_enabled": "Argo CD auto-sync is on and ARGOCD_DISABLE_AUTOSYNC is off",
    "no_target": "no GitOps path or Argo CD app is configured for the service",
    "dry_run": "DRY_RUN is on",
    "approval_expired": "nobody approved it in time",
    "rejected": "rejected",
}

LINK_NAMES = {
    "commit": "Commit",
    "argocd": "Argo CD app",
    "alert": "Alert source",
    "approve": "Approve",
    "pull_request": "Pull request",
    "runbook": "Runbook",
}

TITLES = {
    base.PENDING_APPROVAL: "Rollback of {service} waits for approval",
    base.STARTED: "Rolling back {service}",
    base.COMPLETED: "Rolled back {service}",
    base.FAILED: "Rollback of {service} failed",
    base.NOT_EFFECTIVE: "Rolled back {service}, but errors did not fall",
    base.INTERRUPTED: "Rollback of {service} was interrupted",
    base.ESCALATION: "{service} needs a human: not rolled back automatically",
    base.BLOCKED_EMERGENCY: "Emergency on {service}: safety held the rollback back",
    base.APPROVAL_EXPIRED: "Pending rollback of {service} expired",
    base.REJECTED: "Rollback of {service} was rejected",
    base.APPROVED: "Rollback of {service} was approved",
}


def burst_of(event: base.Event) -> list[str]:
    """The services a burst's digest names (details["services"]); empty for one service."""
    services = event.details.get("services")
    return [str(s) for s in services] if isinstance(services, list) else []


def continued_burst(event: base.Event) -> dict[str, Any] | None:
    """A follow-up digest's `details["continues"]`: the burst's first telling, what it adds."""
    continues = event.details.get("continues")
    return continues if isinstance(continues, dict) else None


def moment(iso: str) -> str:
    """An ISO time as people read it in a message: `2026-11-26 10:00:03 UTC`."""
    try:
        when = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def continues_text(event: base.Event) -> str | None:
    """`continues the burst first reported at <time>` for a follow-up digest, else None."""
    continues = continued_burst(event)
    if continues is None:
        return None
    return f"continues the burst first reported at {moment(str(continues.get('first_at')))}"


def burst_facts(event: base.Event) -> dict[str, Any]:
    """The burst an escalation belongs to, for machines (PagerDuty details, incident webhook)."""
    facts: dict[str, Any] = {}
    if event.details.get("burst_id"):
        facts["burst_id"] = str(event.details["burst_id"])
    continues = continued_burst(event)
    if continues is not None:
        facts["burst_first_reported_at"] = continues.get("first_at")
        facts["burst_added"] = [str(s) for s in continues.get("added") or []]
    return facts


def title(event: base.Event) -> str:
    """A one-line headline for the event."""
    if base.errors_unverified(event):
        return f"Rolled back {event.service}; errors falling not verified"
    if continued_burst(event) is not None:
        return f"{event.service} need a human: the global limit burst goes on, not rolled back"
    if burst_of(event):
        return f"{event.service} need a human: global limit reached, not rolled back"
    return TITLES.get(event.kind, "{service}: " + event.kind).format(service=event.service)


def reason_text(reason: str) -> str:
    """The reason code with a human explanation, e.g. `cooldown (the service was ...)`."""
    explained = REASONS.get(reason)
    return f"{reason} ({explained})" if explained and explained != reason else reason


def link_name(key: str) -> str:
    """A link's label: `argocd` -> `Argo CD app`."""
    return LINK_NAMES.get(key, key.replace("_", " ").capitalize())


def consumed_text(consumed: float | None) -> str | None:
    """Error budget consumed as a percentage, or None when unknown."""
    return None if consumed is None else f"{consumed * 100:.0f}%"


def summary(event: base.Event) -> str:
    """The headline plus tier, budget and reason, for fallback text and page summaries."""
    parts = [f"{event.tier} tier"]
    consumed = consumed_text(event.consumed)
    if consumed:
        parts.append(f"{consumed} of error budget consumed")
    parts.append(f"reason: {event.reason}")
    continues = continues_text(event)
    if continues:
        parts.append(continues)
    burst = burst_of(event)
    named = f": {', '.join(burst)}" if burst else ""
    return f"{title(event)} ({', '.join(parts)}){named}"


def episode_key(service: str, episode: str | None, fallback: str | None) -> str:
    """`service:episode` as a dedup key, hashed when longer than PagerDuty's 255 characters."""
    key = f"{service}:{episode or fallback or 'unknown'}"
    if len(key) > 255:
        key = f"{service[:180]}:{hashlib.sha256(key.encode()).hexdigest()}"
    return key
