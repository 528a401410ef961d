"""`rollback-receiver blackout …`: silences over trigger alerts in Alertmanager, and windows.

`create`, `list` and `end` talk to Alertmanager (ALERTMANAGER_URL) directly, since it
holds silences; `create` first asks the receiver (RECEIVER_URL, GET /api/v1/triggers) for
the trigger kinds it acts on and makes one silence per kind, grouped by a comment tag so
`end` ends them together. `windows` prints the next occurrences of BLACKOUT_WINDOWS.
Exit codes: 0 done, 1 refused or failed (the reason printed), 4 Alertmanager or (for
`create`) the receiver could not be reached.
With an ADMIN_TOKEN at hand, `create` and `end` also record who did it in the
receiver's audit trail (best effort).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click
import requests

from receiver.blackouts import (
    BlackoutRefused,
    TriggerKind,
    active_blackouts,
    comment_of,
    create_blackout,
    end_blackouts,
    group_of,
    silence_kind,
)
from receiver.cli.shared import (
    ExitCode,
    acting_person,
    admin_token,
    fail,
    load_settings,
    receiver_request,
    receiver_url,
    refusal,
)
from receiver.clients.alertmanager import (
    AlertmanagerClient,
    AlertmanagerError,
    AlertmanagerUnavailable,
    Silence,
)

DEFAULT_COUNT = 5


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@contextmanager
def _alertmanager(ctx: click.Context) -> Iterator[AlertmanagerClient]:
    """A client for the group's Alertmanager URL; errors become one line and an exit code."""
    url = ctx.obj
    if not url:
        fail("ALERTMANAGER_URL is not set (or pass --alertmanager-url)")
    client = AlertmanagerClient(url, timeout=5.0)
    try:
        yield client
    except AlertmanagerUnavailable as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    except AlertmanagerError as exc:
        fail(str(exc))
    finally:
        client.close()


@click.group()
@click.option(
    "--alertmanager-url",
    envvar="ALERTMANAGER_URL",
    default=None,
    help="Alertmanager base URL (default: $ALERTMANAGER_URL)",
)
@click.pass_context
def blackout(ctx: click.Context, alertmanager_url: str | None) -> None:
    """Hold automatic rollbacks back: Alertmanager silences and recurring windows."""
    ctx.obj = alertmanager_url.rstrip("/") if alertmanager_url else None


@blackout.command()
@click.option("--duration", required=True, help="how long, e.g. 30m, 2h, 1d")
@click.option("--comment", required=True, help="why, shown in Alertmanager and notifications")
@click.option("--service", default=None, help="only this service (default: every service)")
@click.option(
    "--created-by", default=None, help="who (default: $USER, else $LOGNAME, else the OS user)"
)
@click.pass_context
def create(
    ctx: click.Context, duration: str, comment: str, service: str | None, created_by: str | None
) -> None:
    """Silence every trigger kind the receiver acts on (or one service's) for a while."""
    actor = created_by or acting_person()
    kinds = _trigger_kinds()
    with _alertmanager(ctx) as client:
        try:
            made = create_blackout(client, duration, comment, service, actor, kinds)
        except BlackoutRefused as exc:
            fail(str(exc))
    silence_id, until = made.silence_id, made.until
    scope = f"service {service}" if service else "every service"
    click.echo(
        f"created blackout {silence_id} for {scope} until {_when(until)} by {actor}: "
        f"{comment.strip()}"
    )
    if made.group:
        click.echo(
            f"group {made.group}: {len(made.silence_ids)} silences, one per trigger kind; "
            f"`blackout end {made.group}` (or any of their ids) ends them all"
        )
    for kind, sid, matchers in zip(kinds, made.silence_ids, made.matchers, strict=True):
        click.echo(f"{kind.name} {sid} matchers: {{{', '.join(str(m) for m in matchers)}}}")
    _audit(
        "blackout created",
        actor=actor,
        silence_id=silence_id,
        silence_ids=list(made.silence_ids),
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


def _trigger_kinds() -> list[TriggerKind]:
    """The trigger kinds the receiver acts on (GET /api/v1/triggers); exit 4 if it cannot tell."""
    # Without the receiver's answer a blackout would silence the shipped triggers only and
    # leave the `triggers:` kinds (Sloth, Pyrra, ...) free to roll back: refuse instead.
    where = receiver_url()
    try:
        response = receiver_request("GET", "/api/v1/triggers", timeout=10)
    except requests.RequestException as exc:
        fail(
            f"cannot ask the receiver at {where} for its trigger kinds "
            f"({exc.__class__.__name__}); no blackout created",
            ExitCode.UNREACHABLE,
        )
    try:
        data = response.json()
    except ValueError:
        data = response.text[:200]
    if response.status_code != 200:
        fail(
            f"cannot ask the receiver for its trigger kinds: {refusal(response.status_code, data)}"
            "; no blackout created",
            ExitCode.UNREACHABLE,
        )
    try:
        kinds = [TriggerKind.from_dict(kind) for kind in data["kinds"]]
    except (TypeError, KeyError, ValueError) as exc:
        fail(
            f"the receiver at {where} answered no usable trigger kinds ({exc}); "
            "no blackout created",
            ExitCode.UNREACHABLE,
        )
    if not kinds:
        fail("the receiver answered no trigger kinds; no blackout created", ExitCode.UNREACHABLE)
    return kinds


@blackout.command(name="list")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="every active silence (default: only blackouts and freezes)",
)
@click.pass_context
def list_(ctx: click.Context, show_all: bool) -> None:
    """Show active blackouts and freezes: id, who, why, until, matchers."""
    with _alertmanager(ctx) as client:
        shown = active_blackouts(client, show_all)
    if not shown:
        click.echo("no active blackout")
        return
    listed: set[str] = set()
    for silence in shown:
        group = group_of(silence)
        if group is None:
            click.echo(_silence_line(silence))
        elif group not in listed:
            listed.add(group)
            members = [s for s in shown if group_of(s) == group]
            click.echo(
                f"group {group}  blackout  {len(members)} silences  until "
                f"{_when(max(s.ends_at for s in members))}  by {silence.created_by}  "
                f"— {comment_of(silence)}"
            )
            for member in members:
                click.echo(f"  {_silence_line(member)}")


def _silence_line(silence: Silence) -> str:
    return (
        f"{silence.id}  {silence_kind(silence):<8}  until {_when(silence.ends_at)}  "
        f"by {silence.created_by}  {silence.describe_matchers()}  "
        f"— {comment_of(silence)}"
    )


@blackout.command()
@click.argument("silence_id")
@click.option(
    "--by",
    "actor",
    default=None,
    help="who ends it, for the record (default: $USER, else $LOGNAME, else the OS user)",
)
@click.pass_context
def end(ctx: click.Context, silence_id: str, actor: str | None) -> None:
    """Expire a blackout now: a silence id or a group id (a group ends together)."""
    who = actor or acting_person()
    with _alertmanager(ctx) as client:
        try:
            ended = end_blackouts(client, silence_id)
        except BlackoutRefused as exc:
            fail(str(exc))
    comment = comment_of(ended[0])
    click.echo(
        f"ended blackout {silence_id} ({comment}) by {who} at {_when(datetime.now(UTC))}"
        + (f": {len(ended)} silences ({', '.join(s.id for s in ended)})" if len(ended) > 1 else "")
    )
    _audit(
        "blackout ended",
        actor=who,
        silence_id=silence_id,
        silence_ids=[s.id for s in ended],
        comment=comment,
        created_by=ended[0].created_by,
    )
    _tell_receiver("blackout_ended", who, silence_id=silence_id, comment=comment)


def _tell_receiver(action: str, actor: str, **details: str | None) -> None:
    """Record the action in the receiver's audit trail when an ADMIN_TOKEN is at hand."""
    # Best effort: the silence exists (or ended) whatever the receiver says, so a failure
    # here is a warning, not a failed command.
    if not admin_token():
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
    from receiver.logs import setup_logging

    setup_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), os.environ.get("LOG_FILE"))
    logging.getLogger("receiver.audit").info(message, extra={"audit": True, **fields})


@blackout.command()
@click.option(
    "--count",
    default=DEFAULT_COUNT,
    type=click.IntRange(1, 100),
    help=f"how many occurrences (default: {DEFAULT_COUNT})",
)
def windows(count: int) -> None:
    """Print the next occurrences of the recurring BLACKOUT_WINDOWS."""
    from receiver.decide.blackout import active_window, next_occurrences

    parsed = load_settings().blackout_windows
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
