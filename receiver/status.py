"""Status reads for the API and the console: a service's safety state, the history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from receiver.act.shared_reads import delivery_scope, shared_read
from receiver.config import Settings
from receiver.decide.blackout import active_window, next_occurrences
from receiver.decide.checks import shared_index_of
from receiver.decide.policy import Snapshot
from receiver.errors import NotFound
from receiver.gathering import SilenceCheck
from receiver.state import autosync
from receiver.state.audit import recent_actions, record_action
from receiver.state.history import RollbackRecord, State, iso
from receiver.state.store import Store

STATUS_SCAN = 100  # newest records read for `last_rollback` and `last_skip`
RAN_STATES = frozenset({State.RUNNING, State.COMPLETED, State.FAILED, State.INTERRUPTED})


class StatusReads:
    """What the HTTP layer and the console read (and the audit entries they write)."""

    settings: Settings
    store: Store
    silences: SilenceCheck | None

    def status(self, service: str) -> dict[str, Any]:
        """One service's safety state (GET /api/v1/status?service=)."""
        return service_status(self.settings, self.store, self.silences, service)

    def statuses(
        self, service: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> list[dict[str, Any]]:
        """One service's status, or a page of every configured or seen service's (by name)."""
        names = [service] if service else known_services(self.settings, self.store)
        if cursor is not None:
            names = [name for name in names if name > cursor]
        with delivery_scope():  # Alertmanager's silences listed once for the whole answer
            return [self.status(name) for name in names[:limit]]

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


def service_status(
    settings: Settings, store: Store, silences: SilenceCheck | None, service: str
) -> dict[str, Any]:
    """Cooldown left, rollbacks in the last hour/day, blackout or silence, lock, last rollback."""
    counts = store.window_counts(service)
    last = counts["last_start"]
    cooldown_left = 0.0
    if last is not None:
        cooldown_left = max(0.0, last + settings.cooldown_minutes * 60 - counts["now"])
    active, upcoming = shared_read(("blackout-windows",), lambda: _windows_now(settings))
    ran, skip = _newest_ran_and_skip(store, service)
    return {
        "service": service,
        "enabled": settings.rollback_enabled,
        "locked_by": store.lock_owner(service),
        "cooldown_seconds_left": round(cooldown_left),
        "rollbacks_last_hour": counts["hour"],
        "rollbacks_last_day": counts["day"],
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
        "argocd_autosync_disabled": _autosync_left_off(settings, store, service),
        "last_rollback": ran.to_dict() if ran else None,
        "last_skip": skip.to_dict() if skip else None,
    }


def _newest_ran_and_skip(
    store: Store, service: str
) -> tuple[RollbackRecord | None, RollbackRecord | None]:
    """The newest rollback that ran and the newest skip, reading no more records than needed."""
    ran = skip = None
    for record in store.newest_records(service, STATUS_SCAN):
        if ran is None and record.state in RAN_STATES:
            ran = record
        if skip is None and record.state == State.SKIPPED:
            skip = record
        if ran is not None and skip is not None:
            break
    return ran, skip


def _autosync_left_off(settings: Settings, store: Store, service: str) -> dict[str, Any] | None:
    """The service's Argo CD app if the receiver turned its auto-sync off: since when, by which."""
    target = settings.target_for(service)
    app = target.argocd_app if target else None
    entry = autosync.disabled_apps(store).get(app) if app else None
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
