"""The console's one adapter onto the engine, store, audit trail, Prometheus and blackouts.

Every read and write the console makes goes through here, so a refactor of the engine
changes this file only. Answers are plain dicts and lists, ready for the templates.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from receiver.config import Settings
from receiver.errors import NotFound
from receiver.pipeline import Engine

SESSION_SECRET_KEY = "console:session_secret"
HISTORY_LIMIT = 200


class BlackoutsUnavailable(Exception):
    """Alertmanager is not configured or could not be reached; the text says which."""


def engine() -> Engine:
    """The app's rollback engine."""
    return current_app.extensions["rollback"]  # type: ignore[no-any-return]


def settings() -> Settings:
    """The app's settings."""
    return engine().settings


def admin_actor(token: str) -> str | None:
    """The actor of a valid admin token (ADMIN_TOKEN or ADMIN_TOKENS_FILE), else None."""
    from receiver.http.auth import token_actor

    return token_actor(token, settings())


def admin_tokens() -> list[tuple[str, str]]:
    """Every configured (actor, token): ADMIN_TOKENS_FILE lines and ADMIN_TOKEN as `admin`."""
    conf = settings()
    pairs = list(conf.admin_tokens)
    admin = conf.admin_token.get()
    if admin:
        pairs.append(("admin", admin))
    return pairs


def console_enabled() -> bool:
    """The console, like the API, is off while no admin token is configured."""
    return settings().api_enabled


def session_secret() -> str:
    """SESSION_SECRET(_FILE), else one random secret shared through Redis (SET NX)."""
    configured = settings().session_secret.get()
    if configured:
        return configured
    store = engine().store
    key = store.key(SESSION_SECRET_KEY)
    with store.guarded():
        # The first worker to get here wins; every other worker and replica reads its secret.
        store.client.set(key, secrets.token_urlsafe(48), nx=True)
        value = store.client.get(key)
    return value.decode() if isinstance(value, bytes) else str(value)


# -- rollbacks ----------------------------------------------------------------------------


def list_rollbacks(
    service: str | None = None, state: str | None = None, limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """Records, newest first, optionally of one service and one state."""
    records = engine().list_records(service, limit if state is None else 1000)
    rows = [r.to_dict() for r in records if state is None or r.state == state]
    return rows[:limit]


def get_rollback(rollback_id: str) -> dict[str, Any] | None:
    """One record with every stage and check, or None."""
    try:
        return engine().get_record(rollback_id).to_dict()
    except NotFound:
        return None


LINKED_FIELDS = {
    "commit_url": "revert commit",
    "pull_request": "pull request",
    "argocd_url": "Argo CD app",
    "generatorURL": "alert in Prometheus",
}


def rollback_links(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Links to the revert commit, pull request, Argo CD app and alert, where they can be built."""
    found: dict[str, str] = {}
    sources = (record.get("target") or {}, record.get("details") or {}, record.get("trigger") or {})
    for key, label in LINKED_FIELDS.items():
        for source in sources:
            value = source.get(key)
            if isinstance(value, str) and value.startswith(("https://", "http://")):
                found.setdefault(label, value)
    conf = settings()
    target = conf.target_for(str(record.get("service", "")))
    revert = (record.get("details") or {}).get("revert_commit")
    gitops = target.gitops if target else None
    if (
        revert
        and gitops
        and conf.github_api_url == "https://api.github.com"
        and re.fullmatch(r"[\w.-]+/[\w.-]+", gitops.repo)
    ):
        found.setdefault("revert commit", f"https://github.com/{gitops.repo}/commit/{revert}")
    app = (target.argocd_app if target else None) or conf.argocd_app_name
    if conf.argocd_server and app:
        scheme = "http" if conf.argocd_plaintext else "https"
        found.setdefault("Argo CD app", f"{scheme}://{conf.argocd_server}/applications/{app}")
    return list(found.items())


def pending_approvals() -> list[dict[str, Any]]:
    """Rollbacks waiting for a human, the soonest to expire first."""
    pending = list_rollbacks(state="pending_approval", limit=1000)
    return sorted(pending, key=lambda r: r.get("expires_at") or "")


def approve(rollback_id: str, actor: str, comment: str = "") -> dict[str, Any]:
    """Approve as `actor`; raises Conflict (409) with the reason when the checks block it."""
    record = engine().approve(rollback_id, actor)
    if comment:
        audit(actor, "comment", rollback_id=rollback_id, on="approve", comment=comment)
    return record.to_dict()


def reject(rollback_id: str, actor: str, comment: str = "") -> dict[str, Any]:
    """Reject as `actor`; raises Conflict (409) when it is no longer pending."""
    record = engine().reject(rollback_id, actor)
    if comment:
        audit(actor, "comment", rollback_id=rollback_id, on="reject", comment=comment)
    return record.to_dict()


def audit(actor: str, action: str, **details: Any) -> None:
    """One console action into the audit trail, with the signed-in actor."""
    engine().audit(actor, action, via="console", **details)


# -- services -----------------------------------------------------------------------------


def service_names() -> list[str]:
    """Configured services and every service with history."""
    eng = engine()
    return sorted(set(eng.settings.services) | eng.store.services() | {eng.settings.service_name})


def service_statuses(services: list[str]) -> list[dict[str, Any]]:
    """Cooldown, windows, limits, blackout/silence, lock and last rollback of each service."""
    return engine().statuses_of(services)


def error_budget_consumed(service: str) -> float | None:
    """Share of the error budget spent (1.0 = all) from Prometheus, or None when unknown."""
    from receiver.check import read_budget
    from receiver.clients.prometheus import PrometheusClient

    conf = settings()
    if not conf.prometheus_url:
        return None
    target = conf.target_for(service)
    namespace = target.namespace if target else conf.namespace
    client = PrometheusClient(conf.prometheus_url, timeout=1.5)
    try:
        report = read_budget(
            client,
            service,
            namespace,
            error_budget=conf.error_budget,
            slo_window=conf.slo_window,
        )
    except Exception:  # CannotEvaluate, or any odd answer: the page says "unknown"
        return None
    finally:
        client.session.close()
    return report.consumed


# -- blackouts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveSilence:
    """One active blackout, freeze or silence as the page shows it."""

    id: str
    kind: str
    created_by: str
    comment: str
    matchers: str
    ends_at: str


def alertmanager_configured() -> bool:
    """Silences need ALERTMANAGER_URL."""
    return bool(settings().alertmanager_url)


def _alertmanager() -> Any:
    from receiver.clients.alertmanager import AlertmanagerClient

    url = settings().alertmanager_url
    if not url:
        raise BlackoutsUnavailable("ALERTMANAGER_URL is not set: silences cannot be shown or made")
    return AlertmanagerClient(url, timeout=5.0)


def _blackout_call(call: Any) -> Any:
    from receiver.blackouts import BlackoutRefused
    from receiver.clients.alertmanager import AlertmanagerError, AlertmanagerUnavailable

    client = _alertmanager()
    try:
        return call(client)
    except AlertmanagerUnavailable as exc:
        raise BlackoutsUnavailable(str(exc)) from None
    except (AlertmanagerError, BlackoutRefused) as exc:
        raise BlackoutsUnavailable(str(exc)) from None
    finally:
        client.close()


def active_silences() -> list[ActiveSilence]:
    """Active blackouts and freezes, soonest to end first."""
    from receiver.blackouts import active_blackouts, comment_of, group_of, silence_kind

    silences = _blackout_call(active_blackouts)
    return [
        ActiveSilence(
            id=s.id,
            kind=silence_kind(s),
            created_by=s.created_by,
            comment=comment_of(s) + (f" (group {group_of(s)})" if group_of(s) else ""),
            matchers=s.describe_matchers(),
            ends_at=_when(s.ends_at),
        )
        for s in silences
    ]


def create_blackout(duration: str, comment: str, service: str | None, actor: str) -> str:
    """Make a blackout silence (same code as `blackout create`); its id."""
    from receiver.blackouts import create_blackout as make
    from receiver.blackouts import trigger_kinds

    kinds = trigger_kinds(settings().triggers)
    made = _blackout_call(lambda client: make(client, duration, comment, service, actor, kinds))
    audit(
        actor,
        "blackout_created",
        silence_id=made.silence_id,
        service=made.service,
        until=_when(made.until),
        comment=made.comment[:500],
    )
    return str(made.silence_id)


def end_blackout(silence_id: str, actor: str) -> None:
    """Expire a blackout silence now (same code as `blackout end`)."""
    from receiver.blackouts import end_blackout as expire

    silence = _blackout_call(lambda client: expire(client, silence_id))
    audit(actor, "blackout_ended", silence_id=silence_id, comment=silence.comment[:500])


def recurring_windows(count: int = 5) -> dict[str, Any]:
    """BLACKOUT_WINDOWS: each window, the active one and the next occurrences."""
    from receiver.decide.blackout import active_window, next_occurrences

    windows = settings().blackout_windows
    now = datetime.now(UTC)
    active = active_window(windows, now)
    return {
        "windows": [w.describe() for w in windows],
        "active": active.describe() if active else None,
        "next": [
            {"start": _when(start), "end": _when(end), "window": window.describe()}
            for start, end, window in next_occurrences(windows, now, count)
        ],
    }


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def now() -> float:
    """Wall-clock seconds, for 'time left' on the pages."""
    return time.time()
