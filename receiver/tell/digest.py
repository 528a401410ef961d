"""Escalation bursts: the `global_limit` skips of one delivery are told once, naming everyone.

Inside `escalation_digest` (one delivery), `tell_escalation` holds back `global_limit`
escalations; when the delivery is decided they leave as ONE event (Slack message, PagerDuty
event, incident) whose `details["services"]` names every service. Each service's episode is
claimed as told (the key `Notifications` uses), so Alertmanager's repeats stay quiet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from receiver.decide.vocabulary import SAFETY_REASONS
from receiver.state.history import RollbackRecord
from receiver.tell import base
from receiver.tell.events import event_for

Tell = Callable[[base.Event], None]
Claim = Callable[[str, int], bool]
ONCE_TTL_SECONDS = 86400
BURST_REASON = "global_limit"

_HELD: ContextVar[list[base.Event] | None] = ContextVar("held_escalations", default=None)


def announce_skip(tell: Tell, tier: str | None, escalates: bool, record: RollbackRecord) -> None:
    """A skip that is news: an escalation (digested per delivery) or a blocked emergency."""
    if escalates:
        tell_escalation(tell, event_for(record, base.ESCALATION))
    elif tier == "emergency" and record.reason in SAFETY_REASONS:
        tell(event_for(record, base.BLOCKED_EMERGENCY))


def tell_escalation(tell: Tell, event: base.Event) -> None:
    """Tell an escalation now, or hold it for the delivery's digest when it is a burst's."""
    held = _HELD.get()
    if held is not None and event.reason == BURST_REASON:
        held.append(event)
    else:
        tell(event)


def digest_of(events: list[base.Event]) -> base.Event:
    """One escalation naming every service of the burst (at least two events)."""
    first = events[0]
    services = [e.service for e in events]
    tier = "emergency" if any(e.tier == "emergency" for e in events) else first.tier
    burst_id = f"{first.rollback_id or first.episode or 'burst'}"
    return dataclasses.replace(
        first,
        service=f"{len(services)} services",
        tier=tier,
        rollback_id=None,
        episode=f"burst:{burst_id}",
        links={},
        details={"services": services, "burst_id": burst_id},
    )


def flush(held: list[base.Event], tell: Tell, claim: Claim | None) -> None:
    """Send what a delivery held: itself when alone, else one digest of the new episodes."""
    if len(held) <= 1:
        for event in held:
            tell(event)
        return
    fresh = [e for e in held if _first_time(e, claim)]
    if len(fresh) == 1:
        tell(dataclasses.replace(fresh[0], once_claimed=True))  # claimed just above
    elif fresh:
        tell(digest_of(fresh))


def _first_time(event: base.Event, claim: Claim | None) -> bool:
    """Whether this service's episode was not told yet (in doubt: tell, as notify does)."""
    if claim is None or not event.episode:
        return True
    try:
        return claim(base.once_key(event), ONCE_TTL_SECONDS)
    except Exception:
        return True


@contextmanager
def escalation_digest(tell: Tell, claim: Claim | None = None) -> Iterator[list[base.Event]]:
    """Hold a delivery's burst escalations; flush them as one when the delivery is decided."""
    held: list[base.Event] = []
    token = _HELD.set(held)
    try:
        yield held
    finally:
        _HELD.reset(token)
    flush(held, tell, claim)
