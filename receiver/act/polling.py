"""One way for pollers to wait: an injectable clock and sleep, a poll interval, a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Pacing:
    """How a poller waits between looks; tests inject a fake clock and sleep."""

    poll_seconds: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def deadline(self, seconds: float) -> Deadline:
        """A deadline `seconds` from now on this pacing's clock."""
        return Deadline(self, self.clock() + seconds)


@dataclass(frozen=True)
class Deadline:
    """A point in time on a pacing's clock."""

    pacing: Pacing
    at: float

    def passed(self) -> bool:
        return self.pacing.clock() >= self.at

    def wait(self, seconds: float | None = None) -> None:
        """Sleep one poll interval (or `seconds`), never far past the deadline."""
        wanted = self.pacing.poll_seconds if seconds is None else seconds
        self.pacing.sleep(min(wanted, max(self.at - self.pacing.clock(), 0.01)))
