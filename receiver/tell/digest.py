"""Escalation bursts: the `global_limit` skips of one delivery, or of one minute, are told once.

Inside `escalation_digest` (one delivery), `tell_escalation` holds back `global_limit`
escalations. When the delivery is decided, each service's episode is claimed as told (the
key `Notifications` uses), so Alertmanager's repeats stay quiet, and the new ones go:

- when no burst window is open, at once, as ONE event (Slack message, PagerDuty event,
  incident) whose `details["services"]` names every service (alone when only one), and a
  one-minute window opens in Redis (`state/bursts.py`);
- while a window is open, into Redis: the sweeper of any replica takes the closed window and
  tells what it held as one follow-up digest (`tell_closed_bursts`).

When Redis cannot hold them they are told at once: in doubt, tell; never lose an escalation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from receiver.decide.vocabulary import SAFETY_REASONS
from receiver.state.bursts import Bursts
from receiver.state.history import RollbackRecord
from receiver.tell import base
from receiver.tell.events import event_for

log = logging.getLogger("receiver.notify")

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
        once_claimed=False,
    )


def tell_together(events: list[base.Event], tell: Tell) -> None:
    """One event for these escalations: the one itself when alone, else their digest."""
    if len(events) == 1:
        tell(events[0])
    elif events:
        tell(digest_of(events))


def flush(
    held: list[base.Event], tell: Tell, claim: Claim | None, bursts: Bursts | None = None
) -> None:
    """Send what a delivery held, as one, unless a burst window is open: then Redis holds it."""
    fresh = [claimed for event in held if (claimed := _claim(event, claim)) is not None]
    if fresh and not (bursts is not None and _held_for_later(bursts, fresh)):
        tell_together(fresh, tell)


def tell_closed_bursts(bursts: Bursts, tell: Tell) -> int:
    """Tell what every closed window held, one event each; how many windows this caller told."""
    told = 0
    for window in bursts.closed():
        events = [e for e in map(_event_of, bursts.take(window)) if e is not None]
        if events:  # [] also when another replica took the window first
            tell_together(events, tell)
            told += 1
    return told


def _claim(event: base.Event, claim: Claim | None) -> base.Event | None:
    """The event, marked claimed if this is its episode's first telling; None when told."""
    if claim is None or not event.episode:
        return event
    try:
        first = claim(base.once_key(event), ONCE_TTL_SECONDS)
    except Exception:
        return event  # in doubt, as notify does: Notifications asks again, else tells
    if not first:
        log.info("%s for %s already notified this episode", event.kind, event.service)
        return None
    return dataclasses.replace(event, once_claimed=True)


def _held_for_later(bursts: Bursts, events: list[base.Event]) -> bool:
    """Whether an open window now holds these events; False: tell them at once."""
    try:
        return bursts.hold([e.to_json() for e in events])
    except Exception as exc:  # Redis down: telling twice is better than never
        log.warning(
            "cannot hold %d escalation(s) for the burst digest (%s); telling them now",
            len(events),
            exc.__class__.__name__,
        )
        return False


def _event_of(text: str) -> base.Event | None:
    try:
        return base.Event.from_json(text)
    except (ValueError, TypeError):
        log.error("a held escalation could not be read back: %.200s", text)
        return None


@contextmanager
def escalation_digest(
    tell: Tell, claim: Claim | None = None, bursts: Bursts | None = None
) -> Iterator[list[base.Event]]:
    """Hold a delivery's burst escalations; flush them as one when the delivery is decided."""
    held: list[base.Event] = []
    token = _HELD.set(held)
    try:
        yield held
    finally:
        _HELD.reset(token)
    flush(held, tell, claim, bursts)
