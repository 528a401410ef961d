"""What the backends' read-only `inspect` tells the decision engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TargetFacts:
    """What `inspect` learned; merged across the actions of one mode."""

    current: str | None = None  # the version now in place (branch commit or deployed revision)
    target: str | None = None  # what the rollback would restore
    last_change_at: float | None = None  # epoch seconds of the newest change to blame
    already_rolled_back: bool = False
    autosync_blocks: bool = False  # Argo CD auto-sync would refuse this action
    details: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: TargetFacts) -> TargetFacts:
        changes = [t for t in (self.last_change_at, other.last_change_at) if t is not None]
        return TargetFacts(
            current=self.current or other.current,
            target=self.target or other.target,
            last_change_at=max(changes) if changes else None,
            already_rolled_back=self.already_rolled_back or other.already_rolled_back,
            autosync_blocks=self.autosync_blocks or other.autosync_blocks,
            details={**other.details, **self.details},
        )
