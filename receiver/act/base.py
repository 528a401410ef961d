"""The actions interface: a backend that can put a service back to an earlier version.

Contract of a `RollbackAction` (one module per backend, see gitops_github.py,
gitops_git.py, argocd.py):

- `inspect(job)` only reads. It says what the rollback would do (`current` ->
  `target`), when the newest change to blame happened, whether the deployed
  version is already one the receiver rolled back to, and whether Argo CD's
  auto-sync forbids the action. The pipeline calls it before deciding, so it
  must be quick (short timeouts) and must raise `ActionError` when it cannot
  tell: in doubt, the receiver does not roll back.
- `execute(job, ctx)` changes the world. Before every external write it calls
  `ctx.ensure_owned()` (raises `LockLost` when the lease was lost), and it
  writes what it did into `ctx.details` (e.g. `revert_commit`,
  `rolled_back_from`, `target_commit`, `pull_request`, `argocd_revision`) as
  soon as it did it, so a later failure still names the partial result. It
  raises `ActionError(stage, message, details)` on failure; a git commit exists
  whole or not at all.
- `validate(job, ctx)` waits until the change is live (Argo CD Synced at the
  expected revision and Healthy) or raises `ActionError("validation", ...)`.
  Backends with nothing to wait for keep the default (no-op).

The one place that runs actions, records stages, releases locks and counts
metrics is `receiver.act.dispatch`; backends never touch Redis or metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from receiver.decide.facts import TargetFacts
from receiver.decide.targets import ServiceTarget
from receiver.state.memory import PastRollback

__all__ = ["ActionContext", "RollbackAction", "RollbackJob", "TargetFacts"]


@dataclass(frozen=True)
class RollbackJob:
    """Everything a backend needs to roll one service back; built by the pipeline."""

    rollback_id: str
    service: str
    namespace: str
    tier: str  # critical | emergency | manual
    target: ServiceTarget
    mode: str  # gitops | argocd | both
    reason: str
    automatic: bool = True
    fingerprint: str | None = None
    target_commit: str | None = None  # TARGET_COMMIT / manual override
    target_revision: str | None = None  # TARGET_REVISION (Argo CD history id or git revision)
    bad_revisions: frozenset[str] = frozenset()  # revisions this service was rolled back from
    rolled_back_to: frozenset[str] = frozenset()  # revisions the receiver restored earlier
    dry_run: bool = False


@dataclass
class ActionContext:
    """Shared by the stages of one rollback: the lock check and what has been done so far."""

    ensure_owned: Callable[[], None]
    details: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = lambda message: None


class RollbackAction(ABC):
    """One rollback backend. `stage` names it in records and `rollback_failed_total`."""

    stage: ClassVar[str]

    @abstractmethod
    def inspect(self, job: RollbackJob) -> TargetFacts:
        """Read-only: what the rollback would do and whether it is safe to try."""

    @abstractmethod
    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Make the change; raise ActionError(self.stage, ...) on failure."""

    def validate(self, job: RollbackJob, ctx: ActionContext) -> None:  # noqa: B027
        """Wait until the change is live; the default has nothing to wait for."""

    def past_rollbacks(self, job: RollbackJob) -> tuple[PastRollback, ...]:
        """The receiver's own earlier rollbacks as this system of record shows them (read-only)."""
        return ()
