"""Incident tickets, the words: which events open one, its key, title, labels, body, comments."""

from __future__ import annotations

import hashlib
import time
from typing import Protocol

from receiver.tell import base, wording

CHANNEL = "incident"
LABEL = "rollback"
FAILED_LABEL = "rollback-failed"
MARKER_PREFIX = "<!-- rollback-receiver:incident "
OPENING = (base.STARTED, base.ESCALATION, base.BLOCKED_EMERGENCY)
OUTCOMES = (base.COMPLETED, base.FAILED, base.NOT_EFFECTIVE, base.INTERRUPTED)
WEBHOOK_TYPES = {
    base.STARTED: "started",
    base.COMPLETED: "completed",
    base.FAILED: "failed",
    base.NOT_EFFECTIVE: "not_effective",
    base.INTERRUPTED: "interrupted",
    base.ESCALATION: "escalated",
    base.BLOCKED_EMERGENCY: "escalated",
}
STATES = {
    base.STARTED: "running",
    base.COMPLETED: "completed",
    base.FAILED: "failed",
    base.NOT_EFFECTIVE: "completed",
    base.INTERRUPTED: "interrupted",
    base.ESCALATION: "skipped",
    base.BLOCKED_EMERGENCY: "skipped",
}
CLAIM_SECONDS = 600  # long enough for one create with its retries, short enough to recover
SEARCH_DEPTH = 100  # newest issues of the service looked through for the marker
SECONDARY_LIMIT_PHRASES = (
    "secondary rate limit",
    "please retry your request again later",
    "please wait a few minutes before you try again",
)


class SecretValue(Protocol):
    def get(self) -> str | None: ...


def wanted(event: base.Event) -> bool:
    """Events incidents are about: automatic rollbacks' start and outcomes, and escalations."""
    if event.kind in (base.ESCALATION, base.BLOCKED_EMERGENCY):
        return True
    return event.automatic and event.kind in (base.STARTED, *OUTCOMES) and bool(event.rollback_id)


def burst_services(event: base.Event) -> list[str]:
    """The services an escalation names: several for a burst (details["services"]), else one."""
    services = event.details.get("services")
    if isinstance(services, list) and services:
        return sorted({str(s) for s in services})
    return [event.service]


def incident_key(event: base.Event) -> str:
    """One issue per rollback id; per service and alert fingerprint for escalations; a burst's
    follow-up digest goes to its first event's issue."""
    continues = wording.continued_burst(event)
    if continues is not None and continues.get("incident_key"):
        return str(continues["incident_key"])
    if event.kind not in (base.ESCALATION, base.BLOCKED_EMERGENCY) and event.rollback_id:
        return f"rollback:{event.rollback_id}"
    services = burst_services(event)
    if len(services) > 1:
        burst = str(event.details.get("burst_id") or "")
        if not burst:
            minute = int(time.time() // 60)
            burst = hashlib.sha256(f"{minute}:{','.join(services)}".encode()).hexdigest()[:16]
        return f"burst:{burst}"
    # Deduplicated per fingerprint, never per startsAt (CONTRACT "CLI", monitor).
    fingerprint = (event.episode or event.rollback_id or event.reason).split(":")[0]
    return f"escalation:{event.service}:{fingerprint}"


def marker(key: str) -> str:
    return f"{MARKER_PREFIX}{key} -->"


def issue_title(event: base.Event) -> str:
    """`Rollback of <service>: <tier> error budget burn (<rollback id>)`."""
    services = burst_services(event)
    who = services[0] if len(services) == 1 else f"{len(services)} services"
    return (
        f"Rollback of {who}: {event.tier} error budget burn ({event.rollback_id or event.reason})"
    )


def issue_labels(event: base.Event) -> list[str]:
    return [LABEL, *(f"service:{s}" for s in burst_services(event))]


def _record_link(public_url: str | None, rollback_id: str | None) -> str | None:
    if not public_url or not rollback_id:
        return None
    return f"{public_url.rstrip('/')}/ui/rollbacks/{rollback_id}"


def issue_body(event: base.Event, key: str, public_url: str | None) -> str:
    """The trigger, the checks, the target and links, with the hidden marker on top."""
    lines = [marker(key), f"**{wording.summary(event)}**", ""]
    services = burst_services(event)
    if len(services) > 1:
        lines += ["Services: " + ", ".join(f"`{s}`" for s in services), ""]
    trigger = event.details.get("trigger")
    lines.append("### Trigger")
    if isinstance(trigger, dict) and trigger:
        lines += [f"- {k}: `{v}`" for k, v in sorted(trigger.items()) if not isinstance(v, dict)]
        labels = trigger.get("labels")
        if isinstance(labels, dict):
            lines += [f"- label {k}: `{v}`" for k, v in sorted(labels.items())]
    else:
        lines.append(
            f"- service `{event.service}`, namespace `{event.namespace}`, tier {event.tier}"
        )
    consumed = wording.consumed_text(event.consumed)
    if consumed:
        lines.append(f"- error budget consumed: {consumed}")
    lines += ["", "### Checks"]
    checks = event.details.get("checks")
    if isinstance(checks, list) and checks:
        for check in checks:
            if isinstance(check, dict):
                mark = "pass" if check.get("ok", check.get("passed")) else "block"
                detail = f" — {check['detail']}" if check.get("detail") else ""
                lines.append(f"- {check.get('name', '?')}: {mark}{detail}")
    else:
        lines.append(f"- decision reason: {wording.reason_text(event.reason)}")
    lines += ["", "### Target"]
    if event.from_revision or event.to_revision:
        lines.append(f"- from `{event.from_revision or '?'}` to `{event.to_revision or '?'}`")
    else:
        lines.append("- none (not rolled back)")
    links = dict(event.links)
    record = _record_link(public_url, event.rollback_id)
    if record:
        links.setdefault("record", record)
    if links:
        lines += ["", "### Links"]
        lines += [f"- [{wording.link_name(k)}]({v})" for k, v in sorted(links.items())]
    return "\n".join(lines) + "\n"


def outcome_comment(event: base.Event, public_url: str | None) -> str:
    """One comment per outcome: completed, failed, not effective, interrupted."""
    lines = [f"**{wording.title(event)}**", "", f"- outcome: `{event.kind}`"]
    if event.stage:
        lines.append(f"- stage: {event.stage}")
    if event.error:
        lines.append(f"- error: {event.error}")
    if event.to_revision:
        lines.append(f"- restored: `{event.to_revision}`")
    record = _record_link(public_url, event.rollback_id)
    if record:
        lines.append(f"- record: {record}")
    return "\n".join(lines) + "\n"


def first_issue_service(event: base.Event) -> str:
    """The service label a burst follow-up's first issue is found by (as it was opened)."""
    continues = wording.continued_burst(event) or {}
    first = sorted(str(s) for s in continues.get("first_services") or [])
    return first[0] if first else burst_services(event)[0]


def added_services(event: base.Event) -> list[str]:
    """The services a burst's follow-up digest adds to its first issue."""
    continues = wording.continued_burst(event) or {}
    return sorted({str(s) for s in continues.get("added") or []})


def follow_up_comment(event: base.Event) -> str:
    """The comment a burst's follow-up digest adds to the burst's first issue."""
    added = added_services(event)
    services = burst_services(event)
    lines = [
        f"**{wording.title(event)}**",
        "",
        f"- {wording.continues_text(event)}",
        f"- added ({len(added)}): " + ", ".join(f"`{s}`" for s in added),
        f"- services so far ({len(services)}): " + ", ".join(f"`{s}`" for s in services),
        f"- reason: {wording.reason_text(event.reason)}",
    ]
    return "\n".join(lines) + "\n"


def effective_completion(event: base.Event) -> bool:
    return (
        event.kind == base.COMPLETED
        and not event.details.get("not_effective")
        and not base.errors_unverified(event)
    )
