"""What every command shares: exit codes, failing, JSON output, settings, the receiver's API.

State-touching commands talk to the receiver's API at RECEIVER_URL (default
http://127.0.0.1:8080) with ADMIN_TOKEN (or ADMIN_TOKEN_FILE), naming the person
acting in `X-Rollback-Actor`, so the server is the one source of truth.
"""

from __future__ import annotations

import json
import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import requests

from receiver.errors import ConfigError

if TYPE_CHECKING:
    from receiver.config import Settings

DEFAULT_RECEIVER_URL = "http://127.0.0.1:8080"
FALLBACK_ACTOR = "cli"


class ExitCode(IntEnum):
    """The exit codes of the commands (`check` adds 2 and 3 for its tiers)."""

    OK = 0
    FAILED = 1  # failed or refused; the reason is printed
    UNREACHABLE = 4  # could not reach the receiver / Alertmanager / Prometheus, or not evaluate


def fail(message: str, code: int = ExitCode.FAILED) -> NoReturn:
    """Print one `error:` line on stderr and exit with the code."""
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


def print_json(data: Any) -> None:
    """Print an answer as indented JSON with sorted keys (stable for scripts and diffs)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def load_settings(code: int = ExitCode.FAILED, **overrides: str | None) -> Settings:
    """Settings from the environment (overrides win); a bad value is one line and `code`."""
    from receiver.config import Settings

    env = dict(os.environ)
    env.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        fail(f"configuration: {exc.message}", code)


def acting_person() -> str:
    """Who runs the command: $USER, else $LOGNAME, else the OS account name, else "cli"."""
    for name in ("USER", "LOGNAME"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name or FALLBACK_ACTOR
    except (ImportError, KeyError, OSError):
        # Containers often run as a uid without a passwd entry.
        return FALLBACK_ACTOR


def admin_token() -> str | None:
    """ADMIN_TOKEN_FILE's content (re-read each call) or ADMIN_TOKEN; None when neither is set."""
    path = os.environ.get("ADMIN_TOKEN_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            fail(f"ADMIN_TOKEN_FILE: cannot read {path}: {exc.strerror}")
    return os.environ.get("ADMIN_TOKEN") or None


def receiver_url() -> str:
    """The receiver's base URL from RECEIVER_URL, without a trailing slash."""
    return os.environ.get("RECEIVER_URL", DEFAULT_RECEIVER_URL).rstrip("/")


def receiver_request(
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
    actor: str | None = None,
    timeout: float = 30,
) -> requests.Response:
    """One call to the receiver's admin API with ADMIN_TOKEN and the acting person."""
    headers = {"X-Rollback-Actor": actor or acting_person()}
    token = admin_token()
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


def refusal(status: int, data: Any) -> str:
    """The one line to print for an error answer of the receiver, with what to do about auth."""
    error = data.get("error", data) if isinstance(data, dict) else data
    line = f"{status}: {error}"
    if status == 401:
        given = "" if admin_token() else " (none is set here)"
        line += f"; set ADMIN_TOKEN or ADMIN_TOKEN_FILE to the receiver's admin token{given}"
    elif status == 403:
        line += f" (on the receiver at {receiver_url()})"
    return line


def call_receiver(
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
    ok: tuple[int, ...] = (200, 202),
) -> Any:
    """Call the receiver's admin API; exit 4 when unreachable, 1 with its error otherwise."""
    try:
        response = receiver_request(method, path, body, params)
    except requests.RequestException as exc:
        fail(
            f"cannot reach the receiver at {receiver_url()}: {exc.__class__.__name__}",
            ExitCode.UNREACHABLE,
        )
    return answer_of(response, ok)


def answer_of(response: requests.Response, ok: tuple[int, ...] = (200, 202)) -> Any:
    """The JSON of an answer in `ok`; anything else exits 1 with the receiver's error."""
    try:
        data = response.json()
    except ValueError:
        fail(f"receiver answered {response.status_code} without JSON")
    if response.status_code not in ok:
        fail(refusal(response.status_code, data))
    return data
