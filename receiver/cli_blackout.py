"""`rollback-receiver blackout …`: silences over trigger alerts in Alertmanager, and windows.

`create`, `list` and `end` talk to Alertmanager (ALERTMANAGER_URL) directly, since it
holds silences; `windows` prints the next occurrences of BLACKOUT_WINDOWS. Exit codes:
0 done, 1 refused or failed (the reason printed), 4 Alertmanager could not be reached.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import click

from receiver.clients.alertmanager import (
    AlertmanagerClient,
    AlertmanagerError,
    AlertmanagerUnavailable,
    Silence,
    SilenceNotFound,
    blackout_matchers,
)
from receiver.errors import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 4


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _default_actor() -> str:
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@contextmanager
def _alertmanager(ctx: click.Context) -> Iterator[AlertmanagerClient]:
    """A client for the group's Alertmanager URL; errors become one line and an exit code."""
    url = ctx.obj
    if not url:
        _fail("ALERTMANAGER_URL is not set (or pass --alertmanager-url)")
    client = AlertmanagerClient(url, timeout=5.0)
    try:
        yield client
    except AlertmanagerUnavailable as exc:
        _fail(str(exc), EXIT_UNREACHABLE)
    except AlertmanagerError as exc:
        _fail(str(exc))
    finally:
        client.close()


def is_rollback_silence(silence: Silence) -> bool:
    """A blackout made by `blackout create` or a freeze (rollback_freeze="true")."""
    tiers = blackout_matchers()[0]
    return silence.is_freeze or tiers in silence.matchers


@click.group()
@click.option(
    "--alertmanager-url",
    envvar="ALERTMANAGER_URL",
    default=None,
    help="Alertmanager base URL (env ALERTMANAGER_URL)",
)
@click.pass_context
def blackout(ctx: click.Context, alertmanager_url: str | None) -> None:
    """Hold automatic rollbacks back: Alertmanager silences and recurring windows."""
    ctx.obj = alertmanager_url.rstrip("/") if alertmanager_url else None


@blackout.command()
@click.option("--duration", required=True, help="how long, e.g. 30m, 2h, 1d")
@click.option("--comment", required=True, help="why (shown in Alertmanager and notifications)")
@click.option("--service", default=None, help="only this service (default: every service)")
@click.option("--created-by", default=None, help="who (default $USER)")
@click.pass_context
def create(
    ctx: click.Context, duration: str, comment: str, service: str | None, created_by: str | None
) -> None:
    """Create a silence over every trigger alert (or one service's) for a while."""
    from receiver.config import parse_duration

    try:
        seconds = parse_duration("--duration", duration)
    except ConfigError as exc:
        _fail(exc.message)
    if seconds <= 0:
        _fail("--duration: must be longer than 0")
    if not comment.strip():
        _fail("--comment: say why (it is shown to whoever wonders why nothing rolls back)")
    actor = created_by or _default_actor()
    matchers = blackout_matchers(service)
    with _alertmanager(ctx) as client:
        silence_id = client.create_silence(
            matchers,
            duration=timedelta(seconds=seconds),
            created_by=actor,
            comment=comment.strip(),
        )
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    scope = f"service {service}" if service else "every service"
    click.echo(
        f"created blackout {silence_id} for {scope} until {_when(until)} by {actor}: "
        f"{comment.strip()}"
    )
    click.echo(f"matchers: {{{', '.join(str(m) for m in matchers)}}}")
    _audit(
        "blackout created",
        actor=actor,
        silence_id=silence_id,
        service=service,
        until=_when(until),
        comment=comment.strip(),
    )
    _tell_receiver(
        "blackout_created",
        actor,
        silence_id=silence_id,
        service=service,
        until=_when(until),
        comment=comment.strip(),
    )


@blackout.command(name="list")
@click.option(
    "--all", "show_all", is_flag=True, help="every active silence, not only blackouts and freezes"
)
@click.pass_context
def list_(ctx: click.Context, show_all: bool) -> None:
    """Show active blackouts and freezes: id, who, why, until, matchers."""
    with _alertmanager(ctx) as client:
        silences = client.list_silences(("active",))
    shown = [s for s in silences if show_all or is_rollback_silence(s)]
    if not shown:
        click.echo("no active blackout")
        return
    for silence in sorted(shown, key=lambda s: s.ends_at):
        kind = (
            "freeze"
            if silence.is_freeze
            else ("blackout" if is_rollback_silence(silence) else "silence")
        )
        click.echo(
            f"{silence.id}  {kind:<8}  until {_when(silence.ends_at)}  "
            f"by {silence.created_by}  {silence.describe_matchers()}  "
            f"— {silence.comment}"
        )


@blackout.command()
@click.argument("silence_id")
@click.option("--by", "actor", default=None, help="who ends it (default $USER), for the record")
@click.pass_context
def end(ctx: click.Context, silence_id: str, actor: str | None) -> None:
    """Expire a blackout (an Alertmanager silence) now."""
    who = actor or _default_actor()
    with _alertmanager(ctx) as client:
        try:
            silence = client.get_silence(silence_id)
        except SilenceNotFound:
            _fail(f"no silence {silence_id} in Alertmanager")
        except AlertmanagerError:
            # Alertmanager 0.25 answers a malformed id with a validation error.
            _fail(f"{silence_id!r} is not a silence id")
        if silence.state == "expired":
            _fail(f"silence {silence_id} has already ended ({_when(silence.ends_at)})")
        client.expire_silence(silence_id)
    click.echo(
        f"ended blackout {silence_id} ({silence.comment}) by {who} at {_when(datetime.now(UTC))}"
    )
    _audit(
        "blackout ended",
        actor=who,
        silence_id=silence_id,
        comment=silence.comment,
        created_by=silence.created_by,
    )
    _tell_receiver("blackout_ended", who, silence_id=silence_id, comment=silence.comment)


def _tell_receiver(action: str, actor: str, **details: str | None) -> None:
    """Record the action in the receiver's audit trail when an ADMIN_TOKEN is at hand.

    Best effort: the silence exists (or ended) whatever the receiver says, so a failure
    here is a warning, not a failed command.
    """
    import requests

    from receiver.cli import _admin_token, receiver_request, receiver_url

    if not _admin_token():
        return
    body = {"action": action, **{k: v for k, v in details.items() if v}}
    try:
        response = receiver_request("POST", "/api/v1/audit", body, actor=actor, timeout=10)
    except requests.RequestException as exc:
        click.echo(
            f"warning: not recorded in the receiver's audit trail: cannot reach "
            f"{receiver_url()} "
            f"({exc.__class__.__name__})",
            err=True,
        )
        return
    if response.status_code != 201:
        click.echo(
            f"warning: not recorded in the receiver's audit trail: {response.status_code}", err=True
        )


def _audit(message: str, **fields: object) -> None:
    """One JSON audit line on stderr (and LOG_FILE): who changed a blackout, and when."""
    import logging

    from receiver.logs import setup_logging

    setup_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), os.environ.get("LOG_FILE"))
    logging.getLogger("receiver.audit").info(message, extra={"audit": True, **fields})


@blackout.command()
@click.option(
    "--count",
    default=5,
    show_default=True,
    type=click.IntRange(1, 100),
    help="how many occurrences",
)
def windows(count: int) -> None:
    """Print the next occurrences of the recurring BLACKOUT_WINDOWS."""
    from receiver.config import Settings
    from receiver.decide.blackout import active_window, next_occurrences

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        _fail(f"configuration: {exc.message}")
    parsed = settings.blackout_windows
    if not parsed:
        click.echo("no recurring blackout windows (BLACKOUT_WINDOWS is empty or none)")
        return
    now = datetime.now(UTC)
    current = active_window(parsed, now)
    for window in parsed:
        click.echo(f"window: {window.describe()}")
    click.echo(
        f"now {_when(now)}: " + (f"inside {current.describe()}" if current else "no window active")
    )
    for start, finish, window in next_occurrences(parsed, now, count):
        note = "  (active now)" if start <= now < finish else ""
        local = f"{_local_time(start, window.zone)} → {_local_time(finish, window.zone)}"
        click.echo(f"{_when(start)} → {_when(finish)}  {window.describe()}  [{local}]{note}")


def _local_time(value: datetime, zone: str) -> str:
    from receiver.decide.blackout import zone_info

    return value.astimezone(zone_info(zone)).strftime("%a %Y-%m-%d %H:%M %Z")
