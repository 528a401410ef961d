"""Blackouts as Alertmanager silences: the one place the CLI and the console make and end them."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from receiver.clients.alertmanager import (
    TRIGGER_TIERS,
    AlertmanagerClient,
    AlertmanagerError,
    AlertmanagerUnavailable,
    Matcher,
    Silence,
    SilenceNotFound,
    blackout_matchers,
)
from receiver.decide.targets import TriggerRule
from receiver.errors import ConfigError


class BlackoutRefused(Exception):
    """A blackout request that cannot be carried out; the text says why in one line."""


GROUP_TAG = re.compile(r" \[blackout group ([0-9a-f]{12})\]$")
SHIPPED_KIND = "shipped"


@dataclass(frozen=True)
class TriggerKind:
    """One kind of alert the receiver acts on, as silence matchers and its service label."""

    name: str  # "shipped" or "triggers[<index>]"
    tier: str  # the tier it gives ("critical|emergency" for the shipped kind)
    service_label: str
    matchers: tuple[Matcher, ...]

    def scoped(self, service: str | None) -> list[Matcher]:
        """This kind's matchers, plus its service label when one service is blacked out."""
        extra = [Matcher(self.service_label, service)] if service else []
        return [*self.matchers, *extra]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tier": self.tier,
            "service_label": self.service_label,
            "matchers": [m.to_api() for m in self.matchers],
        }

    @classmethod
    def from_dict(cls, data: Any) -> TriggerKind:
        """A kind as GET /api/v1/triggers answers it; ValueError when it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("matchers"), list):
            raise ValueError("a trigger kind must be an object with a matchers list")
        matchers = tuple(Matcher.from_api(m) for m in data["matchers"] if isinstance(m, dict))
        if not matchers or not all(m.name for m in matchers):
            raise ValueError(f"trigger kind {data.get('name')!r} has no usable matchers")
        return cls(
            name=str(data.get("name", "")),
            tier=str(data.get("tier", "")),
            service_label=str(data.get("service_label") or "service"),
            matchers=matchers,
        )


SHIPPED = TriggerKind(SHIPPED_KIND, TRIGGER_TIERS, "service", tuple(blackout_matchers()))


def trigger_kinds(rules: Sequence[TriggerRule]) -> list[TriggerKind]:
    """The shipped kind, then one kind per `triggers:` entry of ROLLBACK_CONFIG."""
    kinds = [SHIPPED]
    for index, rule in enumerate(rules):
        matchers = tuple(
            Matcher(m.label, m.value[1:], is_regex=True)
            if m.pattern is not None
            else Matcher(m.label, m.value)
            for m in rule.match
        )
        kinds.append(TriggerKind(f"triggers[{index}]", rule.tier, rule.service_label, matchers))
    return kinds


@dataclass(frozen=True)
class CreatedBlackout:
    """The silences just made (one per trigger kind): ids, scope and end."""

    silence_ids: tuple[str, ...]
    group: str | None  # the shared comment tag when there are several silences
    service: str | None
    until: datetime
    matchers: tuple[tuple[Matcher, ...], ...]  # per silence, in the order of silence_ids
    comment: str
    created_by: str

    @property
    def silence_id(self) -> str:
        """The first silence (the shipped kind's); ending it ends the whole group."""
        return self.silence_ids[0]


def group_of(silence: Silence) -> str | None:
    """The blackout group a silence belongs to (its comment tag), if any."""
    match = GROUP_TAG.search(silence.comment)
    return match.group(1) if match else None


def comment_of(silence: Silence) -> str:
    """The comment a person wrote, without the group tag."""
    return GROUP_TAG.sub("", silence.comment)


def is_rollback_silence(silence: Silence) -> bool:
    """A blackout made by `blackout create` (any of its kinds) or a freeze."""
    tiers = blackout_matchers()[0]
    return silence.is_freeze or tiers in silence.matchers or group_of(silence) is not None


def silence_kind(silence: Silence) -> str:
    """`freeze`, `blackout` or `silence` (any other active silence)."""
    if silence.is_freeze:
        return "freeze"
    return "blackout" if is_rollback_silence(silence) else "silence"


def create_blackout(
    client: AlertmanagerClient,
    duration: str,
    comment: str,
    service: str | None,
    actor: str,
    kinds: Sequence[TriggerKind] = (SHIPPED,),
) -> CreatedBlackout:
    """Silence every trigger kind (or one service's) for `duration` (e.g. 30m, 2h, 1d)."""
    from receiver.config import parse_duration

    try:
        seconds = parse_duration("--duration", duration)
    except ConfigError as exc:
        raise BlackoutRefused(exc.message) from None
    if seconds <= 0:
        raise BlackoutRefused("--duration: must be longer than 0")
    if not comment.strip():
        raise BlackoutRefused(
            "--comment: say why (it is shown to whoever wonders why nothing rolls back)"
        )
    if not kinds:
        raise BlackoutRefused("no trigger kinds to silence")
    service = service.strip() if service and service.strip() else None
    group = secrets.token_hex(6) if len(kinds) > 1 else None
    text = comment.strip() + (f" [blackout group {group}]" if group else "")
    made: list[str] = []
    scopes = tuple(tuple(kind.scoped(service)) for kind in kinds)
    try:
        for matchers in scopes:
            made.append(
                client.create_silence(
                    list(matchers),
                    duration=timedelta(seconds=seconds),
                    created_by=actor,
                    comment=text,
                )
            )
    except (AlertmanagerError, AlertmanagerUnavailable):
        # All or none: a half-made blackout would look like one and silence only some kinds.
        for silence_id in made:
            with contextlib.suppress(AlertmanagerError, AlertmanagerUnavailable):
                client.expire_silence(silence_id)
        raise
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    return CreatedBlackout(tuple(made), group, service, until, scopes, comment.strip(), actor)


def end_blackouts(client: AlertmanagerClient, blackout_id: str) -> list[Silence]:
    """Expire a blackout now: a silence id or a group id; a grouped silence ends its group."""
    if re.fullmatch(r"[0-9a-f]{12}", blackout_id):
        members = _group_members(client, blackout_id)
        if not members:
            raise BlackoutRefused(f"no active blackout group {blackout_id}")
    else:
        try:
            silence = client.get_silence(blackout_id)
        except SilenceNotFound:
            raise BlackoutRefused(f"no silence {blackout_id} in Alertmanager") from None
        except AlertmanagerError:
            # Alertmanager 0.25 answers a malformed id with a validation error.
            raise BlackoutRefused(f"{blackout_id!r} is not a silence id") from None
        if silence.state == "expired":
            ended = silence.ends_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            raise BlackoutRefused(f"silence {blackout_id} has already ended ({ended})")
        group = group_of(silence)
        others = [s for s in _group_members(client, group) if s.id != silence.id] if group else []
        members = [silence, *others]
    for member in members:
        client.expire_silence(member.id)
    return members


def end_blackout(client: AlertmanagerClient, silence_id: str) -> Silence:
    """Expire a blackout now (its whole group); the silence named, refused when unknown."""
    return end_blackouts(client, silence_id)[0]


def _group_members(client: AlertmanagerClient, group: str) -> list[Silence]:
    live = client.list_silences(("active", "pending"))
    return [s for s in live if group_of(s) == group]


def active_blackouts(client: AlertmanagerClient, show_all: bool = False) -> list[Silence]:
    """Active blackouts and freezes (or every active silence), the soonest to end first."""
    silences = client.list_silences(("active",))
    shown = [s for s in silences if show_all or is_rollback_silence(s)]
    return sorted(shown, key=lambda s: s.ends_at)
