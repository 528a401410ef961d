"""The rollback record: one per decision that is not `ignored` or `duplicate`."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """The `state` of a rollback record (contract, "History")."""

    PENDING_APPROVAL = "pending_approval"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    EXPIRED = "expired"


FINAL_STATES = tuple(s for s in State if s not in (State.PENDING_APPROVAL, State.RUNNING))


class StageName(StrEnum):
    """A rollback stage: a record's `stages[].name`, the `stage` label of rollback_failed_total."""

    GITOPS = "gitops"
    ARGOCD = "argocd"
    VALIDATION = "validation"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Restoration:
    """What the backends did during one rollback, from the keys they write into ctx.details."""

    from_commit: str | None = None  # the branch commit rolled back from
    from_revision: str | None = None  # the Argo CD revision rolled back from
    target_commit: str | None = None  # the commit whose tree was restored
    target_revision: str | None = None  # a requested Argo CD history id or revision
    revert_commit: str | None = None  # the new commit that restores target_commit
    pull_request: str | None = None  # GITOPS_MODE=pull-request: the PR's URL
    argocd_revision: str | None = None  # what Argo CD deployed
    argocd_history_id: str | None = None

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> Restoration:
        """Read the backends' `ctx.details` (act/base.py names the keys)."""

        def text(key: str) -> str | None:
            value = details.get(key)
            return str(value) if value not in (None, "") else None

        return cls(
            from_commit=text("rolled_back_from"),
            from_revision=text("argocd_from_revision"),
            target_commit=text("target_commit"),
            revert_commit=text("revert_commit"),
            pull_request=text("pull_request"),
            argocd_revision=text("argocd_revision"),
            argocd_history_id=text("argocd_history_id"),
        )

    @classmethod
    def from_record(cls, rolled_back_from: dict[str, Any], target: dict[str, Any]) -> Restoration:
        """Read a record's `rolled_back_from` and `target` (the contract's JSON)."""

        def text(source: dict[str, Any], key: str) -> str | None:
            value = source.get(key)
            return str(value) if value not in (None, "") else None

        return cls(
            from_commit=text(rolled_back_from, "commit"),
            from_revision=text(rolled_back_from, "revision"),
            target_commit=text(target, "commit"),
            target_revision=text(target, "revision"),
            revert_commit=text(target, "revert_commit"),
            pull_request=text(target, "pull_request"),
            argocd_revision=text(target, "argocd_revision"),
            argocd_history_id=text(target, "argocd_history_id"),
        )

    def rolled_back_from(self) -> str | None:
        """The revision that was live before the rollback."""
        return self.from_commit or self.from_revision

    def live_revision(self) -> str | None:
        """The revision live now: the revert commit, else what Argo CD deployed, else the target."""
        return (
            self.revert_commit or self.argocd_revision or self.target_commit or self.target_revision
        )

    def record_fields(self) -> tuple[dict[str, str], dict[str, str]]:
        """As a record's (`rolled_back_from`, `target`) entries; unset fields left out."""
        source = {"commit": self.from_commit, "revision": self.from_revision}
        target = {
            "commit": self.target_commit,
            "revision": self.target_revision,
            "revert_commit": self.revert_commit,
            "pull_request": self.pull_request,
            "argocd_revision": self.argocd_revision,
            "argocd_history_id": self.argocd_history_id,
        }
        return (
            {k: v for k, v in source.items() if v},
            {k: v for k, v in target.items() if v},
        )


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
    repeats: int = 0  # later deliveries of a skipped episode skipped for the same reason
    last_seen_at: str | None = None  # the newest of them
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The record as JSON, serialised straight from its fields (no deep copy via asdict)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["stages"] = [vars(stage) for stage in self.stages]  # Stage is flat
        return json.dumps(data, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "live_revision": self.restoration().live_revision()}

    def restoration(self) -> Restoration:
        """What the backends did, read from `rolled_back_from` and `target`."""
        return Restoration.from_record(self.rolled_back_from, self.target)

    def absorb(self, restoration: Restoration) -> None:
        """Merge what the backends did so far into the record (partial results included)."""
        source, target = restoration.record_fields()
        self.rolled_back_from.update(source)
        self.target.update(target)

    @classmethod
    def from_json(cls, text: str) -> RollbackRecord:
        data = json.loads(text)
        data["stages"] = [Stage(**s) for s in data.get("stages", [])]
        known = set(cls.__dataclass_fields__)
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
