"""Status reads for the API and the console: a service's safety state, the history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from receiver.act.shared_reads import delivery_scope
from receiver.config import Settings
from receiver.decide.blackout import active_window, next_occurrences
from receiver.decide.checks import shared_index_of
from receiver.decide.policy import Snapshot
from receiver.errors import NotFound
from receiver.gathering import SilenceCheck
from receiver.state import autosync
from receiver.state.audit import recent_actions, record_action
from receiver.state.history import RollbackRecord, iso
from receiver.state.overview import ServiceReads, read_services
from receiver.state.store import Store


class StatusReads:
    """What the HTTP layer and the console read (and the audit entries they write)."""

    settings: Settings
    store: Store
    silences: SilenceCheck | None

    def status(self, service: str) -> dict[str, Any]:
        """One service's safety state (GET /api/v1/status?service=)."""
        return self.statuses_of([service])[0]

    def statuses(
        self, service: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> list[dict[str, Any]]:
        """One service's status, or a page of every configured or seen service's (by name)."""
        names = [service] if service else known_services(self.settings, self.store)
        if cursor is not None:
            names = [name for name in names if name > cursor]
        with delivery_scope():  # Alertmanager's silences listed once for the whole answer
            return self.statuses_of(names[:limit])

    def statuses_of(self, services: Sequence[str]) -> list[dict[str, Any]]:
        """The status of each service, in order, from a few Redis round trips for them all."""
        return service_statuses(self.settings, self.store, self.silences, services)

    def list_records(
        self, service: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> list[RollbackRecord]:
        """History, newest first, after `cursor` (the last id of the page before); a service
        not configured is looked up in the shared index."""
        shared = None if service is None else shared_index_of(service, self.settings)
        if shared is None or shared == service:
            return self.store.list_records(service, limit, cursor)
        found = self.store.list_records(shared, self.store.max_records, cursor)
        return [record for record in found if record.service == service][:limit]

    def get_record(self, rollback_id: str) -> RollbackRecord:
        """One record, or NotFound (404)."""
        return get_record(self.store, rollback_id)

    def audit(self, actor: str, action: str, **details: Any) -> None:
        """Record one operator action."""
        record_action(self.store, actor, action, **details)

    def audit_trail(self, limit: int = 50) -> list[dict[str, Any]]:
        """Operator actions, newest first."""
        return recent_actions(self.store, limit)

    def ready(self) -> bool:
        """Whether the state store answers (/readyz)."""
        return self.store.ping()

    def gauges(self) -> tuple[dict[str, int], dict[tuple[str, str], float]]:
        """The two Redis-backed gauges (rollback_in_progress, last transition times)."""
        return self.store.gauges(set(self.settings.services))

    def autosync_disabled_apps(self) -> list[str]:
        """Argo CD apps the receiver left with automated sync off (a Redis-backed gauge)."""
        return sorted(autosync.disabled_apps(self.store))


def namespace_of(settings: Settings, service: str) -> str:
    target = settings.target_for(service)
    return target.namespace if target else settings.namespace


def known_services(settings: Settings, store: Store) -> list[str]:
    """Configured services and every service the store has seen, sorted."""
    return sorted(set(settings.services) | store.services())


def service_statuses(
    settings: Settings, store: Store, silences: SilenceCheck | None, services: Sequence[str]
) -> list[dict[str, Any]]:
    """Cooldown left, rollbacks in the last hour/day, blackout or silence, lock, last rollback."""
    reads = read_services(store, services)
    apps = [_argocd_app(settings, service) for service in services]
    disabled = autosync.disabled_apps(store) if any(apps) else {}  # one read for the page
    windows = _windows_now(settings)
    return [
        _status_of(settings, silences, service, read, windows, _autosync_left_off(app, disabled))
        for service, read, app in zip(services, reads, apps, strict=True)
    ]


def _status_of(
    settings: Settings,
    silences: SilenceCheck | None,
    service: str,
    read: ServiceReads,
    windows: tuple[str | None, list[str]],
    autosync_off: dict[str, Any] | None,
) -> dict[str, Any]:
    cooldown_left = 0.0
    if read.last_start is not None:
        cooldown_left = max(0.0, read.last_start + settings.cooldown_minutes * 60 - read.now)
    active, upcoming = windows
    return {
        "service": service,
        "enabled": settings.rollback_enabled,
        "locked_by": read.locked_by,
        "cooldown_seconds_left": round(cooldown_left),
        "rollbacks_last_hour": read.last_hour,
        "rollbacks_last_day": read.last_day,
        "limits": {
            "per_hour": settings.max_rollbacks_per_hour,
            "per_day": settings.max_rollbacks_per_day,
            "concurrent": settings.max_concurrent_rollbacks,
        },
        "blackout": {
            "active": active,
            "next": upcoming,
            "silence": _silence_of(settings, silences, service),
        },
        "argocd_autosync_disabled": autosync_off,
        "last_rollback": read.last_ran.to_dict() if read.last_ran else None,
        "last_skip": read.last_skip.to_dict() if read.last_skip else None,
    }


def _argocd_app(settings: Settings, service: str) -> str | None:
    target = settings.target_for(service)
    return target.argocd_app if target else None


def _autosync_left_off(
    app: str | None, disabled: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The service's Argo CD app if the receiver turned its auto-sync off: since when, by which."""
    entry = disabled.get(app) if app else None
    if entry is None:
        return None
    since = entry.get("since")
    return {
        "app": app,
        "since": iso(float(since)) if isinstance(since, (int, float)) else None,
        "rollback_id": entry.get("rollback_id"),
    }


def _windows_now(settings: Settings) -> tuple[str | None, list[str]]:
    """The blackout window active now, and the next one's start (the same for every service)."""
    now = datetime.now(UTC)
    active = active_window(settings.blackout_windows, now)
    upcoming = next_occurrences(settings.blackout_windows, now, 1)
    return (active.describe() if active else None), [iso(s.timestamp()) for s, _e, _w in upcoming]


def _silence_of(settings: Settings, silences: SilenceCheck | None, service: str) -> str | None:
    """The Alertmanager silence that would hold this service's triggers now, if any."""
    if silences is None:
        return None
    labels = {
        "service": service,
        "namespace": namespace_of(settings, service),
        "rollback_tier": "emergency",
        "alertname": "TriggerEmergencyRollback",
    }
    try:
        silenced, note = silences(labels)
    except Exception as exc:
        return f"unknown: Alertmanager unreachable ({exc.__class__.__name__})"
    return note if silenced else None


def reservation_snapshot(settings: Settings, store: Store, service: str) -> Snapshot:
    """The reservation's state read check by check, for explain (changes nothing)."""
    counts = store.window_counts(service)
    last = counts["last_start"]
    left = 0.0 if last is None else last + settings.cooldown_minutes * 60 - counts["now"]
    return Snapshot(
        locked_by=store.lock_owner(service),
        cooldown_seconds_left=max(0.0, left),
        last_hour=counts["hour"],
        last_day=counts["day"],
        running=store.global_count(settings.global_limit_window_seconds),
        settings=settings,
    )


def get_record(store: Store, rollback_id: str) -> RollbackRecord:
    """One record, or 404."""
    record = store.get_record(rollback_id)
    if record is None:
        raise NotFound(f"no rollback {rollback_id}")
    return record
