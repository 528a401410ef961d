"""The rollback record: one per decision that is not `ignored` or `duplicate`."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

STATES = (
    "pending_approval",
    "running",
    "completed",
    "failed",
    "interrupted",
    "skipped",
    "rejected",
    "expired",
)
FINAL_STATES = ("completed", "failed", "interrupted", "skipped", "rejected", "expired")


def iso(ts: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """Sortable, unique: UTC time to the second plus 8 random hex digits."""
    return time.strftime("rb-%Y%m%dT%H%M%SZ-", time.gmtime()) + secrets.token_hex(4)


@dataclass
class Stage:
    name: str
    started_at: str
    finished_at: str | None = None
    ok: bool | None = None
    error: str | None = None


@dataclass
class RollbackRecord:
    """Every stage and timestamp of one rollback (or of one decision not to roll back)."""

    id: str
    service: str
    namespace: str
    tier: str
    decision: str
    reason: str
    state: str
    trigger: dict[str, Any]
    created_at: str
    actor: str = "alertmanager"
    mode: str = "both"
    automatic: bool = True
    dry_run: bool = False
    episode: str | None = None
    rolled_back_from: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    finished_at: str | None = None
    error: str | None = None
    failed_stage: str | None = None
    not_effective: bool = False
    validated: bool | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    expires_at: str | None = None  # pending approval deadline
    veto_at: str | None = None  # emergency veto deadline
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, text: str) -> RollbackRecord:
        data = json.loads(text)
        data["stages"] = [Stage(**s) for s in data.get("stages", [])]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def start_stage(self, name: str) -> Stage:
        stage = Stage(name=name, started_at=iso())
        self.stages.append(stage)
        return stage

    def finish_stage(self, stage: Stage, ok: bool, error: str | None = None) -> None:
        stage.finished_at = iso()
        stage.ok = ok
        stage.error = error

    def note(self, actor: str, action: str, **extra: Any) -> None:
        """Audit trail: who did what, when."""
        self.audit.append({"at": iso(), "actor": actor, "action": action, **extra})
