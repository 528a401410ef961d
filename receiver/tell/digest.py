"""Escalation bursts: the `global_limit` skips of one delivery, or of one minute, are told once.

Inside `escalation_digest` (one delivery), `tell_escalation` holds back `global_limit`
escalations. When the delivery is decided, each service's episode is claimed as told (the
key `Notifications` uses), so Alertmanager's repeats stay quiet, and the new ones go:

- when no burst window is open, at once, as ONE event (Slack message, PagerDuty event,
  incident) whose `details["services"]` names every service (alone when only one) and whose
  `details["burst_id"]` names the burst, and a one-minute window opens in Redis
  (`state/bursts.py`) remembering that event's burst id, PagerDuty dedup_key, incident key
  and time (`BurstFirst`, stored in the script that opens the window);
- while a window is open, into Redis: the sweeper of any replica takes the closed window and
  tells what it held as one follow-up digest of the SAME burst (`tell_closed_bursts`): its
  `details["continues"]` carries the first event's keys, so PagerDuty updates the open alert,
  the incident issue gets a comment, and Slack says which burst it continues.

When Redis cannot hold them they are told at once: in doubt, tell; never lose an escalation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from receiver.decide.vocabulary import SAFETY_REASONS
from receiver.state.bursts import Bursts
from receiver.state.history import RollbackRecord
from receiver.tell import base
from receiver.tell.events import event_for
from receiver.tell.incident_text import incident_key
from receiver.tell.pagerduty import PagerDutyNotifier
from receiver.tell.wording import burst_of

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


@dataclass(frozen=True)
class BurstFirst:
    """What a burst window remembers of the event that opened it, to tell the rest as its own."""

    burst_id: str
    at: str  # when it was told, ISO 8601 UTC
    services: list[str]
    tier: str
    dedup_key: str  # the PagerDuty dedup_key it was sent with
    incident_key: str  # the key of its incident issue

    @classmethod
    def of(cls, event: base.Event) -> BurstFirst:
        return cls(
            burst_id=str(event.details.get("burst_id") or ""),
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            services=burst_of(event) or [event.service],
            tier=event.tier,
            dedup_key=PagerDutyNotifier.dedup_key_of(event),
            incident_key=incident_key(event),
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> BurstFirst | None:
        """The stored first, or None: a window opened without one (an older replica), unreadable."""
        if not text:
            return None
        try:
            first = cls(**json.loads(text))
        except (ValueError, TypeError):
            log.error("a burst window's first event could not be read back: %.200s", text)
            return None
        return first if first.burst_id and isinstance(first.services, list) else None


def _tier_of(tiers: list[str]) -> str:
    return "emergency" if "emergency" in tiers else tiers[0]


def _burst_event(
    like: base.Event, services: list[str], tier: str, episode: str, **details: Any
) -> base.Event:
    """An escalation naming `services`, shaped after one of them; no rollback id, no links,
    and none of that one service's own facts (revisions, budget, error) shown as everyone's."""
    return dataclasses.replace(
        like,
        service=f"{len(services)} services",
        tier=tier,
        rollback_id=None,
        consumed=None,
        from_revision=None,
        to_revision=None,
        error=None,
        stage=None,
        episode=episode,  # its own once-per-episode claim in Notifications
        links={},
        details={"services": services, **details},
        once_claimed=False,
    )


def burst_id_of(events: list[base.Event]) -> str:
    """A burst's id: its first escalation's rollback id."""
    first = events[0]
    return f"{first.rollback_id or first.episode or 'burst'}"


def digest_of(events: list[base.Event]) -> base.Event:
    """One escalation naming every service of the burst (at least two events)."""
    services = [e.service for e in events]
    tier, burst_id = _tier_of([e.tier for e in events]), burst_id_of(events)
    return _burst_event(events[0], services, tier, f"burst:{burst_id}", burst_id=burst_id)


def opening_of(events: list[base.Event]) -> base.Event:
    """What a burst's first telling sends: the one event, with its burst id, else the digest."""
    if len(events) > 1:
        return digest_of(events)
    event = events[0]
    return dataclasses.replace(event, details={**event.details, "burst_id": burst_id_of(events)})


def follow_up_of(first: BurstFirst, events: list[base.Event]) -> base.Event:
    """The rest of a burst, told as the first event's continuation: every service so far."""
    added = list(dict.fromkeys(e.service for e in events))
    services = list(dict.fromkeys([*first.services, *added]))
    continues = {
        "first_at": first.at,
        "first_services": first.services,
        "added": added,
        "dedup_key": first.dedup_key,
        "incident_key": first.incident_key,
    }
    tier = _tier_of([first.tier, *(e.tier for e in events)])
    episode = f"burst:{first.burst_id}:follow-up"  # one follow-up per window
    return _burst_event(
        events[0], services, tier, episode, burst_id=first.burst_id, continues=continues
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
    if not fresh:
        return
    opening = opening_of(fresh)
    if not (bursts is not None and _held_for_later(bursts, fresh, BurstFirst.of(opening))):
        tell(opening)


def tell_closed_bursts(bursts: Bursts, tell: Tell) -> int:
    """Tell what every closed window held, one event each; how many windows this caller told."""
    told = 0
    for window in bursts.closed():
        taken = bursts.take(window)
        events = [e for e in map(_event_of, taken.held) if e is not None]
        if not events:  # also when another replica took the window first
            continue
        first = BurstFirst.from_json(taken.first)
        if first is None:
            tell_together(events, tell)  # nothing to continue: told as a burst of its own
        else:
            tell(follow_up_of(first, events))
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


def _held_for_later(bursts: Bursts, events: list[base.Event], first: BurstFirst) -> bool:
    """Whether an open window now holds these events; False: tell them at once (`first`)."""
    try:
        return bursts.hold([e.to_json() for e in events], first.to_json())
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
