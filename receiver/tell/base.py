"""The notifier interface: one small module per channel (slack.py, pagerduty.py).

A `Notifier.send(event)` makes one delivery attempt series (its own bounded
retries, honouring Retry-After) and raises `NotificationError` when the
channel did not take the message. It never sees Redis, never blocks a
rollback: `receiver.tell.notify.Notifications` runs it off the rollback's
thread and counts failures in `rollback_notification_failures_total{channel}`.
No secret (webhook URL, routing key) may appear in an exception message.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

# Event kinds, one per thing people must hear about.
PENDING_APPROVAL = "pending_approval"
STARTED = "started"
COMPLETED = "completed"
FAILED = "failed"
NOT_EFFECTIVE = "not_effective"
INTERRUPTED = "interrupted"
ESCALATION = "escalation"  # already_rolled_back, no_recent_change, global_limit
BLOCKED_EMERGENCY = "blocked_emergency"  # an emergency that a safety check held back
APPROVAL_EXPIRED = "approval_expired"
REJECTED = "rejected"
APPROVED = "approved"

# `errors_fell` of a record (and an event's details) when stabilisation could not verify it.
ERRORS_UNKNOWN = "unknown"

KINDS = (
    PENDING_APPROVAL,
    STARTED,
    COMPLETED,
    FAILED,
    NOT_EFFECTIVE,
    INTERRUPTED,
    ESCALATION,
    BLOCKED_EMERGENCY,
    APPROVAL_EXPIRED,
    REJECTED,
    APPROVED,
)


@dataclass(frozen=True)
class Event:
    """Something about one rollback (or one blocked trigger episode) worth telling people."""

    kind: str
    service: str
    namespace: str
    tier: str  # critical | emergency | manual
    reason: str
    rollback_id: str | None = None
    episode: str | None = None  # fingerprint:startsAt:tier; dedup key for escalations
    automatic: bool = True
    consumed: float | None = None  # error budget consumed, 0..1+, when known
    from_revision: str | None = None
    to_revision: str | None = None
    error: str | None = None
    stage: str | None = None
    actor: str | None = None
    links: dict[str, str] = field(default_factory=dict)  # commit, argocd, alert, approve, ...
    details: dict[str, Any] = field(default_factory=dict)
    once_claimed: bool = False  # the escalation digest already claimed its once-per-episode key

    def to_json(self) -> str:
        """The event as JSON, to hold it in Redis (an escalation waiting for its burst digest)."""
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Event:
        data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def once_key(event: Event) -> str:
    """The claim that makes an escalation or blocked emergency told once per episode."""
    return f"notified:{event.kind}:{event.service}:{event.episode}"


def errors_unverified(event: Event) -> bool:
    """A completion whose stabilisation check saw no post-rollback sample (or no Prometheus)."""
    return event.kind == COMPLETED and event.details.get("errors_fell") == ERRORS_UNKNOWN


class NotificationError(Exception):
    """A channel refused or could not take a message; the text names no secret."""


class Notifier(ABC):
    channel: ClassVar[str]

    @abstractmethod
    def wants(self, event: Event) -> bool:
        """Whether this channel tells about this kind of event."""

    @abstractmethod
    def send(self, event: Event) -> None:
        """Deliver one event (bounded retries inside); raise NotificationError on failure."""
