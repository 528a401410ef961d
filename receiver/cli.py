"""`rollback-receiver`: serve, monitor, check, and the operator commands.

State-touching commands (history, approve, reject, rollback, replay, status)
talk to the receiver's API at RECEIVER_URL with ADMIN_TOKEN, so the server is
the one source of truth. Exit codes: 0 done, 1 failed or refused, 4 could not
reach the receiver (or could not evaluate).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import click
import requests

from receiver.errors import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 4


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_settings() -> Any:
    from receiver.config import Settings

    try:
        return Settings.from_env()
    except ConfigError as exc:
        fail(f"configuration: {exc.message}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rollback-receiver")
def main() -> None:
    """Roll a deployment back, automatically and safely, when its error budget burns."""


# -- serve ------------------------------------------------------------------------------


@main.command()
@click.option("--bind", default=None, help="host:port (default 0.0.0.0:$PORT)")
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="gunicorn workers")
def serve(bind: str | None, workers: int | None) -> None:
    """Run the receiver under gunicorn."""
    settings = load_settings()
    env = dict(os.environ)
    env["RECEIVER_BIND"] = bind or f"0.0.0.0:{settings.port}"
    count = workers or int(env.get("RECEIVER_WORKERS", "2"))
    if settings.embedded_store and count > 1:
        click.echo(
            "warning: REDIS_URL unset: embedded store, so one worker only "
            "(locks are not shared between processes)",
            err=True,
        )
        count = 1
    env["RECEIVER_WORKERS"] = str(count)
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rollback-metrics-")
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):  # counters of a previous run are not ours
        stale.unlink()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    os.execvpe(  # noqa: S606 - become gunicorn
        gunicorn, [gunicorn, "-c", "python:receiver.gunicorn_conf", "receiver.wsgi:app"], env
    )


# -- talking to the receiver ---------------------------------------------------------------


def _admin_token() -> str | None:
    path = os.environ.get("ADMIN_TOKEN_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            fail(f"ADMIN_TOKEN_FILE: cannot read {path}: {exc.strerror}")
    return os.environ.get("ADMIN_TOKEN") or None


def receiver_url() -> str:
    return os.environ.get("RECEIVER_URL", "http://127.0.0.1:8080").rstrip("/")


def receiver_request(
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
    actor: str | None = None,
    timeout: float = 30,
) -> requests.Response:
    """One call to the receiver's admin API with ADMIN_TOKEN and the acting person."""
    person = actor or os.environ.get("USER") or os.environ.get("LOGNAME") or "cli"
    headers = {"X-Rollback-Actor": person}
    token = _admin_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(
        method,
        f"{receiver_url()}{path}",
        json=body,
        params=params,
        headers=headers,
        timeout=timeout,
    )


def api(
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
    ok: tuple[int, ...] = (200, 202),
) -> Any:
    """Call the receiver's admin API; exit 4 when unreachable, 1 with its error otherwise."""
    base = receiver_url()
    try:
        response = receiver_request(method, path, body, params)
    except requests.RequestException as exc:
        fail(f"cannot reach the receiver at {base}: {exc.__class__.__name__}", EXIT_UNREACHABLE)
    try:
        data = response.json()
    except ValueError:
        fail(f"receiver answered {response.status_code} without JSON")
    if response.status_code not in ok:
        fail(
            f"{response.status_code}: {data.get('error', data) if isinstance(data, dict) else data}"
        )
    return data


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))


def _record_line(r: dict[str, Any]) -> str:
    target = r.get("target", {})
    to = target.get("revert_commit") or target.get("commit") or target.get("revision") or "-"
    return (
        f"{r['id']}  {r['created_at']}  {r['service']:<16} {r['tier']:<9} "
        f"{r['state']:<16} {r['reason']:<20} -> {str(to)[:12]}  by {r.get('actor', '-')}"
    )


@main.command()
@click.option("--service", default=None)
@click.option("--limit", default=20, type=click.IntRange(1, 1000))
@click.option(
    "--audit",
    "audit",
    is_flag=True,
    help="operator actions instead: approvals, rejections, manual rollbacks, blackouts",
)
@click.option("--json", "as_json", is_flag=True)
def history(service: str | None, limit: int, audit: bool, as_json: bool) -> None:
    """Rollback history, newest first."""
    if audit:
        trail = api("GET", "/api/v1/audit", params={"limit": limit})
        if as_json:
            return _print(trail, True)
        if not trail["audit"]:
            click.echo("no operator actions recorded")
        for entry in trail["audit"]:
            rest = {k: v for k, v in entry.items() if k not in ("at", "actor", "action")}
            click.echo(
                f"{entry['at']}  {entry['actor']:<24} {entry['action']:<18} "
                + " ".join(f"{k}={v}" for k, v in sorted(rest.items()))
            )
        return
    params: dict[str, Any] = {"limit": limit}
    if service:
        params["service"] = service
    data = api("GET", "/api/v1/rollbacks", params=params)
    if as_json:
        return _print(data, True)
    if not data["rollbacks"]:
        click.echo("no rollbacks recorded")
    for record in data["rollbacks"]:
        click.echo(_record_line(record))


@main.command()
@click.argument("rollback_id")
@click.option("--json", "as_json", is_flag=True)
def approve(rollback_id: str, as_json: bool) -> None:
    """Approve a pending rollback (the safety checks run again)."""
    data = api("POST", f"/api/v1/rollbacks/{rollback_id}/approve")
    if as_json:
        return _print(data, True)
    click.echo(f"approved: {_record_line(data)}")


@main.command()
@click.argument("rollback_id")
@click.option("--json", "as_json", is_flag=True)
def reject(rollback_id: str, as_json: bool) -> None:
    """Reject a pending rollback."""
    data = api("POST", f"/api/v1/rollbacks/{rollback_id}/reject")
    if as_json:
        return _print(data, True)
    click.echo(f"rejected: {_record_line(data)}")


@main.command()
@click.option("--service", required=True)
@click.option("--gitops-only", is_flag=True, help="only the GitOps revert commit")
@click.option("--argocd-only", is_flag=True, help="only the Argo CD rollback")
@click.option("--target-commit", envvar="TARGET_COMMIT", default=None)
@click.option("--target-revision", envvar="TARGET_REVISION", default=None)
@click.option("--reason", envvar="ROLLBACK_REASON", default="manual rollback")
@click.option("--dry-run", is_flag=True)
@click.option("--force", is_flag=True, help="pass cooldown and rate limits (never the lock)")
@click.option("--json", "as_json", is_flag=True)
def rollback(
    service: str,
    gitops_only: bool,
    argocd_only: bool,
    target_commit: str | None,
    target_revision: str | None,
    reason: str,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Roll a service back now (a human's decision)."""
    if gitops_only and argocd_only:
        fail("--gitops-only and --argocd-only exclude each other")
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
    data = api("POST", "/api/v1/rollbacks", body=body)
    if as_json:
        _print(data, True)
    else:
        click.echo(f"{data['decision']} ({data['reason']}): {_record_line(data['record'])}")
    if data["decision"] not in ("rollback",) and data["reason"] != "dry_run":
        sys.exit(EXIT_FAILED)


@main.command()
@click.option("--service", default=None)
@click.option("--json", "as_json", is_flag=True)
def status(service: str | None, as_json: bool) -> None:
    """Cooldown, rate-limit use, blackout and last rollback per service."""
    data = api("GET", "/api/v1/status", params={"service": service} if service else None)
    if as_json:
        return _print(data, True)
    for s in data["services"]:
        last = s["last_rollback"]
        click.echo(
            f"{s['service']}: lock={s['locked_by'] or '-'} "
            f"cooldown_left={s['cooldown_seconds_left']}s "
            f"last_hour={s['rollbacks_last_hour']}/{s['limits']['per_hour']} "
            f"last_day={s['rollbacks_last_day']}/{s['limits']['per_day']} "
            f"blackout={s['blackout']['active'] or 'none'} "
            f"last={last['id'] + ' ' + last['state'] if last else '-'}"
        )


@main.command()
@click.argument("payload_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def replay(payload_file: str, as_json: bool) -> None:
    """Run a stored Alertmanager payload through every check without acting."""
    try:
        payload = json.loads(Path(payload_file).read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {payload_file}: {exc.strerror}")
    except ValueError:
        fail(f"{payload_file} is not JSON")
    data = api("POST", "/api/v1/explain", body=payload)
    if as_json:
        return _print(data, True)
    for alert in data["alerts"]:
        click.echo(
            f"{alert['alertname']} {alert['service']} ({alert['fingerprint']}): "
            f"{alert['decision']} / {alert['reason']}"
        )
        for check in alert["checks"]:
            mark = "pass" if check["passed"] else "BLOCK"
            click.echo(f"  {mark:<5} {check['check']:<20} {check['detail']}")


def _add_optional_commands() -> None:
    """Commands that live in their own modules."""
    from receiver.cli_blackout import blackout
    from receiver.cli_ops import check, monitor

    main.add_command(blackout)
    main.add_command(check)
    main.add_command(monitor)


_add_optional_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
