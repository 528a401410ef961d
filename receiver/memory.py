"""Give the C allocator's free pages back to the system: glibc's malloc_trim, where there is one.

glibc keeps what a thread freed in that thread's malloc arena, for the next allocation there;
a /metrics scrape frees a few hundred kB at once, deliveries free theirs in between, and a
worker's RSS creeps up by what the arenas keep (docs/performance.md). malloc_trim(0) hands
every arena's free pages back (0.2 ms after a scrape of 100 services, 10 µs with nothing to
hand back). Each serving process does it once a second from a daemon thread (`Trimmer`), so
a worker that never serves a scrape (Prometheus keeps its connection to one worker) gives
its pages back too. musl and macOS have no malloc_trim: there it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

from receiver.periodic import Periodic

log = logging.getLogger("receiver.memory")
TRIM_INTERVAL_SECONDS = 1.0


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # no glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def can_trim() -> bool:
    """True where glibc provides malloc_trim (a Trimmer there is worth its thread)."""
    return _MALLOC_TRIM is not None


def release_free_memory() -> bool:
    """malloc_trim(0) where glibc provides it; False where there is none."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class Trimmer(Periodic):
    """Every `interval` seconds, malloc_trim(0), in a daemon thread of the serving process.

    ctypes lets go of the GIL for the call: requests go on meanwhile, and only a malloc in an
    arena being trimmed waits for it (0.01 to 1.3 ms, docs/performance.md).
    """

    name = "malloc-trim"

    def __init__(self, interval: float = TRIM_INTERVAL_SECONDS) -> None:
        super().__init__(interval)

    def tick(self) -> None:
        try:
            release_free_memory()
        except Exception:  # never expected of malloc_trim; the worker must not care
            log.exception("malloc_trim failed; no longer trimming")
            self._stop.set()
