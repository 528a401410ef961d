"""A typed, frozen reading of an Argo CD Application JSON (API-FACTS C.2); nothing else reads it.

`AppState.from_api(body)` raises `AppShapeError` when a field the receiver reads has the wrong
JSON type (a proxy's HTML page, another API); missing optional fields read as empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RUNNING_PHASES = ("Running", "Terminating")
FINISHED_PHASES = ("Succeeded", "Failed", "Error")


class AppShapeError(ValueError):
    """The answer is JSON but not an Application as the receiver reads it."""


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time, or None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _object(parent: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AppShapeError(f"{where}.{key} is not an object")
    return value


def _text(parent: Mapping[str, Any], key: str, where: str) -> str | None:
    value = parent.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AppShapeError(f"{where}.{key} is not a string")
    return value


@dataclass(frozen=True)
class HistoryEntry:
    """One `status.history[]` deployment: what was deployed, when and by whom."""

    id: int
    revision: str
    deployed_at: float | None
    initiated_by: str | None  # initiatedBy.username; None for automated syncs
    automated: bool  # initiatedBy.automated: Argo CD's auto-sync deployed it

    @classmethod
    def from_api(cls, entry: Any, where: str) -> HistoryEntry:
        """One history entry; `id` must be a JSON number (int64, API-FACTS C.0)."""
        if not isinstance(entry, dict):
            raise AppShapeError(f"{where} is not an object")
        number = entry.get("id")
        if isinstance(number, bool) or not isinstance(number, int):
            raise AppShapeError(f"{where}.id is not a number")
        initiated = _object(entry, "initiatedBy", where)
        return cls(
            id=number,
            revision=_text(entry, "revision", where) or "",
            deployed_at=parse_time(_text(entry, "deployedAt", where)),
            initiated_by=_text(initiated, "username", f"{where}.initiatedBy"),
            automated=initiated.get("automated") is True,
        )


@dataclass(frozen=True)
class Operation:
    """The queued/running `operation`, or the last `status.operationState`."""

    phase: str | None  # None for a queued operation the controller has not picked up
    revision: str | None
    message: str
    started_at: str | None
    initiated_by: str | None

    @classmethod
    def queued(cls, body: dict[str, Any]) -> Operation:
        """The top-level `operation` (present while queued or running)."""
        sync = _object(body, "sync", "operation")
        initiated = _object(body, "initiatedBy", "operation")
        return cls(
            None,
            _text(sync, "revision", "operation.sync"),
            "",
            None,
            _text(initiated, "username", "operation.initiatedBy"),
        )

    @classmethod
    def from_state(cls, body: dict[str, Any]) -> Operation:
        """`status.operationState`: phase, message and the revision it deployed or tries."""
        where = "status.operationState"
        inner = _object(body, "operation", where)
        sync = _object(inner, "sync", f"{where}.operation")
        result = _object(body, "syncResult", where)
        initiated = _object(inner, "initiatedBy", f"{where}.operation")
        return cls(
            _text(body, "phase", where),
            _text(sync, "revision", f"{where}.operation.sync")
            or _text(result, "revision", f"{where}.syncResult"),
            _text(body, "message", where) or "",
            _text(body, "startedAt", where),
            _text(initiated, "username", f"{where}.operation.initiatedBy"),
        )


@dataclass(frozen=True)
class AppState:
    """What the receiver reads of one Application, at one moment."""

    name: str
    sync_status: str  # Synced | OutOfSync | Unknown
    sync_revision: str | None  # what the target revision resolves to now (git head)
    health: str | None
    health_message: str
    automated: dict[str, Any] | None  # spec.syncPolicy.automated as sent (kept to restore it)
    history: tuple[HistoryEntry, ...]  # oldest first, ids increase
    operation: Operation | None  # queued or running (top-level `operation`)
    last_operation: Operation | None  # status.operationState

    @classmethod
    def from_api(cls, body: Any) -> AppState:
        """Parse an Application; AppShapeError when it is not one."""
        if not isinstance(body, dict):
            raise AppShapeError("the answer is not an object")
        metadata = _object(body, "metadata", "application")
        spec = _object(body, "spec", "application")
        policy = _object(spec, "syncPolicy", "spec")
        automated = policy.get("automated")
        if automated is not None and not isinstance(automated, dict):
            raise AppShapeError("spec.syncPolicy.automated is not an object")
        status = _object(body, "status", "application")
        sync = _object(status, "sync", "status")
        health = _object(status, "health", "status")
        entries = status.get("history")
        entries = [] if entries is None else entries
        if not isinstance(entries, list):
            raise AppShapeError("status.history is not a list")
        queued = _object(body, "operation", "application")
        state = _object(status, "operationState", "status")
        return cls(
            name=_text(metadata, "name", "metadata") or "",
            sync_status=_text(sync, "status", "status.sync") or "Unknown",
            sync_revision=_text(sync, "revision", "status.sync"),
            health=_text(health, "status", "status.health"),
            health_message=_text(health, "message", "status.health") or "",
            automated=automated,
            history=tuple(
                HistoryEntry.from_api(e, f"status.history[{i}]") for i, e in enumerate(entries)
            ),
            operation=Operation.queued(queued) if "operation" in body and queued else None,
            last_operation=Operation.from_state(state) if state else None,
        )

    @property
    def autosync(self) -> bool:
        """Argo CD's IsAutomatedSyncEnabled: `automated` set and `enabled` not false."""
        return self.automated is not None and self.automated.get("enabled") is not False

    @property
    def newest(self) -> HistoryEntry | None:
        return self.history[-1] if self.history else None

    @property
    def deployed_revision(self) -> str | None:
        """The revision last deployed: the newest history entry (else the compared revision).

        `status.sync.revision` is what the target revision resolves to now, which after an
        Argo CD rollback is not what runs; the history says what was deployed.
        """
        if self.newest is not None and self.newest.revision:
            return self.newest.revision
        return self.sync_revision

    @property
    def newest_deploy_at(self) -> float | None:
        stamps = [e.deployed_at for e in self.history if e.deployed_at is not None]
        return max(stamps) if stamps else None

    @property
    def operation_running(self) -> bool:
        """An operation is queued or running: Argo CD refuses another one."""
        last = self.last_operation
        return self.operation is not None or (last is not None and last.phase in RUNNING_PHASES)

    @property
    def operation_revision(self) -> str | None:
        """The revision of the current operation, else of the last one."""
        if self.operation is not None and self.operation.revision:
            return self.operation.revision
        return self.last_operation.revision if self.last_operation else None

    @property
    def failed_operation(self) -> Operation | None:
        """The last operation when it ended Failed or Error and nothing runs now."""
        last = self.last_operation
        if self.operation is None and last is not None and last.phase in ("Failed", "Error"):
            return last
        return None

    def entry(self, history_id: int) -> HistoryEntry | None:
        return next((e for e in self.history if e.id == history_id), None)

    def entries_initiated_by(self, username: str) -> tuple[HistoryEntry, ...]:
        """The deployments a given account started (never automated syncs), oldest first."""
        if not username:
            return ()
        return tuple(e for e in self.history if not e.automated and e.initiated_by == username)

    def operation_since(self, before: AppState, revision: str | None) -> bool:
        """True when an operation (at `revision`, if given) started after the `before` reading.

        It counts an operation queued or running now, a finished operationState that was not
        there before, and a new history entry: whichever of them Argo CD shows by now.
        """

        def wanted(found: str | None) -> bool:
            return revision is None or (found or "").lower() == revision.lower()

        if self.operation is not None and wanted(self.operation.revision):
            return True
        last, earlier = self.last_operation, before.last_operation
        if last is not None and last != earlier and wanted(last.revision):
            return True
        old_newest = before.newest.id if before.newest else -1
        return any(e.id > old_newest and wanted(e.revision) for e in self.history)
