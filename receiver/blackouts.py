"""Blackouts as Alertmanager silences: the one place the CLI and the console make and end them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from receiver.clients.alertmanager import (
    AlertmanagerClient,
    AlertmanagerError,
    Matcher,
    Silence,
    SilenceNotFound,
    blackout_matchers,
)
from receiver.errors import ConfigError


class BlackoutRefused(Exception):
    """A blackout request that cannot be carried out; the text says why in one line."""


@dataclass(frozen=True)
class CreatedBlackout:
    """A silence just made: its id, scope and end."""

    silence_id: str
    service: str | None
    until: datetime
    matchers: tuple[Matcher, ...]
    comment: str
    created_by: str


def is_rollback_silence(silence: Silence) -> bool:
    """A blackout made by `blackout create` or a freeze (rollback_freeze="true")."""
    tiers = blackout_matchers()[0]
    return silence.is_freeze or tiers in silence.matchers


def silence_kind(silence: Silence) -> str:
    """`freeze`, `blackout` or `silence` (any other active silence)."""
    if silence.is_freeze:
        return "freeze"
    return "blackout" if is_rollback_silence(silence) else "silence"


def create_blackout(
    client: AlertmanagerClient, duration: str, comment: str, service: str | None, actor: str
) -> CreatedBlackout:
    """Silence every trigger alert (or one service's) for `duration` (e.g. 30m, 2h, 1d)."""
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
    service = service.strip() if service and service.strip() else None
    matchers = blackout_matchers(service)
    silence_id = client.create_silence(
        matchers, duration=timedelta(seconds=seconds), created_by=actor, comment=comment.strip()
    )
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    return CreatedBlackout(silence_id, service, until, tuple(matchers), comment.strip(), actor)


def end_blackout(client: AlertmanagerClient, silence_id: str) -> Silence:
    """Expire a silence now; refused when it is unknown, malformed or already ended."""
    try:
        silence = client.get_silence(silence_id)
    except SilenceNotFound:
        raise BlackoutRefused(f"no silence {silence_id} in Alertmanager") from None
    except AlertmanagerError:
        # Alertmanager 0.25 answers a malformed id with a validation error.
        raise BlackoutRefused(f"{silence_id!r} is not a silence id") from None
    if silence.state == "expired":
        ended = silence.ends_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise BlackoutRefused(f"silence {silence_id} has already ended ({ended})")
    client.expire_silence(silence_id)
    return silence


def active_blackouts(client: AlertmanagerClient, show_all: bool = False) -> list[Silence]:
    """Active blackouts and freezes (or every active silence), the soonest to end first."""
    silences = client.list_silences(("active",))
    shown = [s for s in silences if show_all or is_rollback_silence(s)]
    return sorted(shown, key=lambda s: s.ends_at)
