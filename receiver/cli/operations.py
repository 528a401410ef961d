"""The operator commands: history, approve, reject, rollback, status, replay.

Each one is a call to the receiver's admin API (receiver.cli.shared), so the server
stays the one source of truth. Exit codes: 0 done, 1 failed or refused (the reason
printed), 4 could not reach the receiver.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import requests
from click.core import ParameterSource

from receiver.cli.rendering import (
    audit_lines,
    describe_record,
    history_table,
    replay_lines,
    status_lines,
)
from receiver.cli.shared import (
    ExitCode,
    answer_of,
    call_receiver,
    fail,
    print_json,
    receiver_request,
    receiver_url,
)

DEFAULT_LIMIT = 20
DEFAULT_WAIT_SECONDS = 900
POLL_SECONDS = 2.0
WAITING_STATES = ("running", "pending_approval")
JSON_HELP = "print the receiver's JSON answer (default: text)"


@click.command()
@click.option("--service", default=None, help="only this service (default: every service)")
@click.option(
    "--limit",
    default=DEFAULT_LIMIT,
    type=click.IntRange(1, 1000),
    help=f"how many, newest first (default: {DEFAULT_LIMIT})",
)
@click.option(
    "--audit",
    "audit",
    is_flag=True,
    help="operator actions instead: approvals, rejections, manual rollbacks, blackouts "
    "(default: rollback records)",
)
@click.option(
    "--cursor", help="start after this rollback id, a page's next_cursor (default: the newest)"
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def history(
    service: str | None, limit: int, audit: bool, cursor: str | None, as_json: bool
) -> None:
    """Rollback history, newest first."""
    if audit:
        trail = call_receiver("GET", "/api/v1/audit", params={"limit": limit})
        if as_json:
            print_json(trail)
        elif not trail["audit"]:
            click.echo("no operator actions recorded")
        else:
            click.echo("\n".join(audit_lines(trail["audit"])))
        return
    params: dict[str, Any] = {"limit": limit}
    if service:
        params["service"] = service
    if cursor:
        params["cursor"] = cursor
    data = call_receiver("GET", "/api/v1/rollbacks", params=params)
    if as_json:
        print_json(data)
    elif not data["rollbacks"]:
        click.echo("no rollbacks recorded")
    else:
        click.echo("\n".join(history_table(data["rollbacks"])))
        if data.get("next_cursor"):
            click.echo(f"more: history --cursor {data['next_cursor']}")


def _decide_pending(verb: str, rollback_id: str, as_json: bool) -> None:
    """Approve or reject a pending rollback through the API and print the record."""
    data = call_receiver("POST", f"/api/v1/rollbacks/{rollback_id}/{verb}")
    if as_json:
        print_json(data)
    else:
        click.echo(f"{verb}d: {describe_record(data)}")


@click.command()
@click.argument("rollback_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def approve(rollback_id: str, as_json: bool) -> None:
    """Approve a pending rollback (the safety checks run again)."""
    _decide_pending("approve", rollback_id, as_json)


@click.command()
@click.argument("rollback_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def reject(rollback_id: str, as_json: bool) -> None:
    """Reject a pending rollback."""
    _decide_pending("reject", rollback_id, as_json)


@click.command()
@click.option("--service", required=True, help="the service to roll back")
@click.option(
    "--gitops-only",
    is_flag=True,
    help="only the GitOps revert commit (default: off, ROLLBACK_MODE decides)",
)
@click.option(
    "--argocd-only",
    is_flag=True,
    help="only the Argo CD rollback (default: off, ROLLBACK_MODE decides)",
)
@click.option(
    "--target-commit",
    envvar="TARGET_COMMIT",
    default=None,
    help="commit to restore (default: $TARGET_COMMIT, else the one before the last change)",
)
@click.option(
    "--target-revision",
    envvar="TARGET_REVISION",
    default=None,
    help="Argo CD history id to restore (default: $TARGET_REVISION, else the previous one)",
)
@click.option(
    "--reason",
    envvar="ROLLBACK_REASON",
    default="manual rollback",
    help='why, for the record (default: $ROLLBACK_REASON, else "manual rollback")',
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="decide and record, change nothing (default: off; DRY_RUN=true forces it)",
)
@click.option(
    "--force",
    is_flag=True,
    help="pass cooldown and rate limits, never the lock (default: off)",
)
@click.option(
    "--wait",
    is_flag=True,
    help="wait for the outcome: exit 0 completed, 1 failed, not effective or still running "
    "at --timeout (default: answer once it has started)",
)
@click.option(
    "--timeout",
    default=DEFAULT_WAIT_SECONDS,
    type=click.IntRange(1, 86400),
    help=f"seconds --wait waits for the outcome (default: {DEFAULT_WAIT_SECONDS})",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def rollback(
    ctx: click.Context,
    service: str,
    gitops_only: bool,
    argocd_only: bool,
    target_commit: str | None,
    target_revision: str | None,
    reason: str,
    dry_run: bool,
    force: bool,
    wait: bool,
    timeout: int,
    as_json: bool,
) -> None:
    """Roll a service back now (a human's decision)."""
    if gitops_only and argocd_only:
        fail("--gitops-only and --argocd-only exclude each other")
    if not wait and ctx.get_parameter_source("timeout") is ParameterSource.COMMANDLINE:
        fail("--timeout is how long --wait waits: add --wait")
    mode = "gitops" if gitops_only else "argocd" if argocd_only else None
    body = {
        "service": service,
        "mode": mode,
        "target_commit": target_commit,
        "target_revision": target_revision,
        "reason": reason,
        "dry_run": dry_run,
        "force": force,
    }
    data = call_receiver("POST", "/api/v1/rollbacks", body=body)
    refused = data["decision"] != "rollback" and data["reason"] != "dry_run"
    if wait and data["decision"] == "rollback":
        if not as_json:
            click.echo(f"{data['decision']} ({data['reason']}): {describe_record(data['record'])}")
        click.echo(f"waiting up to {timeout}s for {data['record']['id']}", err=True)
        record = wait_for_outcome(data["record"]["id"], timeout)
        code, summary = outcome_of(record, timeout)
        if as_json:
            print_json({**data, "record": record})
        else:
            click.echo(f"{summary}: {describe_record(record)}")
        sys.exit(code)
    if as_json:
        print_json(data)
    else:
        click.echo(f"{data['decision']} ({data['reason']}): {describe_record(data['record'])}")
    if refused:
        sys.exit(ExitCode.FAILED)


def wait_for_outcome(rollback_id: str, timeout: float) -> dict[str, Any]:
    """Poll the record until it leaves running/pending or the timeout passes; the last one read."""
    # A receiver briefly away or answering 5xx (a restart, Redis failing over) is polled
    # again; still away at the end is exit 4.
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    unreachable: str | None = None
    while True:
        budget = max(1.0, min(10.0, deadline - time.monotonic()))
        try:
            response = receiver_request("GET", f"/api/v1/rollbacks/{rollback_id}", timeout=budget)
        except requests.RequestException as exc:
            unreachable = exc.__class__.__name__
        else:
            if response.status_code >= 500:
                unreachable = f"answered {response.status_code}"
            else:
                unreachable = None
                last = answer_of(response, (200,))
                if last["state"] not in WAITING_STATES:
                    return last
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(POLL_SECONDS, left))
    if unreachable is not None or last is None:
        fail(
            f"cannot reach the receiver at {receiver_url()} while waiting for {rollback_id} "
            f"({unreachable}); it may still be running",
            ExitCode.UNREACHABLE,
        )
    return last


def outcome_of(record: dict[str, Any], timeout: float) -> tuple[int, str]:
    """The exit code and a few words for the record `--wait` ended with."""
    state = record["state"]
    if state in WAITING_STATES:
        return ExitCode.FAILED, (
            f"still {state.replace('_', ' ')} after {timeout:g}s (it goes on on the receiver)"
        )
    if state == "completed" and record.get("not_effective"):
        return ExitCode.FAILED, "completed but not effective (errors did not fall)"
    if state == "completed" and (record.get("details") or {}).get("errors_fell") == "unknown":
        return ExitCode.OK, "completed (errors falling not verified: check the service)"
    if state == "completed":
        return ExitCode.OK, "completed"
    if state == "failed":
        where = f" at {record['failed_stage']}" if record.get("failed_stage") else ""
        why = f": {record['error']}" if record.get("error") else ""
        return ExitCode.FAILED, f"failed{where}{why}"
    return ExitCode.FAILED, state


@click.command()
@click.option("--service", default=None, help="only this service (default: every service)")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def status(service: str | None, as_json: bool) -> None:
    """Cooldown, rate-limit use, blackout or silence, and last rollback per service."""
    data = call_receiver("GET", "/api/v1/status", params={"service": service} if service else None)
    if as_json:
        print_json(data)
    elif not data["services"]:
        click.echo("no services configured or recorded")
    else:
        click.echo("\n".join(status_lines(data["services"])))


@click.command()
@click.argument("payload_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def replay(payload_file: str, as_json: bool) -> None:
    """Run a stored Alertmanager payload through every check without acting."""
    try:
        payload = json.loads(Path(payload_file).read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {payload_file}: {exc.strerror}")
    except ValueError:
        fail(f"{payload_file} is not JSON")
    data = call_receiver("POST", "/api/v1/explain", body=payload)
    if as_json:
        print_json(data)
    else:
        click.echo("\n".join(replay_lines(data["alerts"])))
