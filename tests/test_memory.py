"""A serving process hands its allocator's free pages back once a second (glibc's malloc_trim)."""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver import memory
from receiver.app import create_app
from receiver.pipeline import Engine

ROOT = Path(__file__).resolve().parents[1]
HAS_GLIBC = hasattr(ctypes.CDLL(None), "malloc_trim")
# 40 MB of 4 kB buffers (glibc's, not pymalloc's: over 512 bytes; under the mmap threshold),
# one more buffer above them so free() alone cannot shrink the heap, then all but it freed.
FREED_BUT_KEPT = """
from pathlib import Path
from receiver import memory

def rss_mb():
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

blocks = [bytearray(4096) for _ in range(10_000)]
top = bytearray(4096)
del blocks
kept = rss_mb()
released = memory.release_free_memory()
print(released, round(kept - rss_mb(), 1))
"""


@pytest.mark.skipif(not HAS_GLIBC, reason="malloc_trim is glibc's")
def test_release_hands_the_freed_memory_glibc_kept_back_to_the_system() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", FREED_BUT_KEPT], env=env, capture_output=True, text=True, timeout=60
    )
    released, dropped_mb = out.stdout.split()
    assert released == "True"
    assert float(dropped_mb) > 30, out.stdout


def test_without_glibc_release_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_MALLOC_TRIM", None)
    assert memory.release_free_memory() is False


# The same 40 MB, freed with nothing but the Trimmer running: RSS polled for at most 10 s.
TRIMMED_BY_THE_THREAD = FREED_BUT_KEPT.replace(
    "released = memory.release_free_memory()\n",
    """import time
trimmer = memory.Trimmer(interval=0.05)
trimmer.start()
released = memory.can_trim()
deadline = time.monotonic() + 10
while kept - rss_mb() < 30 and time.monotonic() < deadline:
    time.sleep(0.05)
trimmer.stop()
""",
)
# The control: the same, no trimming, a fifth of a second (four of its intervals) given.
NOT_TRIMMED = FREED_BUT_KEPT.replace(
    "released = memory.release_free_memory()\n", "import time\ntime.sleep(0.2)\nreleased = False\n"
)


@pytest.mark.skipif(not HAS_GLIBC, reason="malloc_trim is glibc's")
@pytest.mark.parametrize(("script", "drops"), [(TRIMMED_BY_THE_THREAD, True), (NOT_TRIMMED, False)])
def test_the_trimmer_gives_back_what_a_process_that_never_asks_kept(
    script: str, drops: bool
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    _, dropped_mb = out.stdout.split()
    assert (float(dropped_mb) > 30) is drops, out.stdout + out.stderr


def test_the_trimmer_trims_every_interval_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = threading.Semaphore(0)
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.release() or True)
    trimmer = memory.Trimmer(interval=0.01)
    trimmer.start()
    assert all(calls.acquire(timeout=5) for _ in range(3))
    trimmer.stop()
    assert not trimmer._thread.is_alive()
    while calls.acquire(blocking=False):  # what came in while stopping
        pass
    time.sleep(0.05)  # five intervals: a running thread would have trimmed again
    assert not calls.acquire(blocking=False)


def test_a_failing_trim_is_logged_once_and_ends_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> bool:
        raise OSError("no such thing")

    class Kept(logging.Handler):  # on the logger itself: create_app stops propagation
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    lines: list[str] = []
    handler = Kept()
    logging.getLogger("receiver.memory").addHandler(handler)
    monkeypatch.setattr(memory, "release_free_memory", fail)
    try:
        trimmer = memory.Trimmer(interval=0.01)
        trimmer.start()
        trimmer._thread.join(timeout=5)
    finally:
        logging.getLogger("receiver.memory").removeHandler(handler)
    assert not trimmer._thread.is_alive()
    assert lines == ["malloc_trim failed; no longer trimming"]


@pytest.mark.parametrize("setting", [None, "false"])
def test_without_glibc_a_serving_app_starts_no_trimmer(
    setting: str | None, make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "_MALLOC_TRIM", None)
    assert memory.can_trim() is False
    engine = make_engine(RECEIVER_MALLOC_TRIM=setting)
    app = create_app(engine.settings, engine=engine)
    app.extensions["sweeper"].stop()
    assert "trimmer" not in app.extensions


@pytest.mark.skipif(not HAS_GLIBC, reason="malloc_trim is glibc's")
@pytest.mark.parametrize(("setting", "trimming"), [(None, True), ("false", False)])
def test_a_serving_app_runs_the_trimmer_unless_turned_off(
    setting: str | None, trimming: bool, make_engine: Callable[..., Engine]
) -> None:
    engine = make_engine(RECEIVER_MALLOC_TRIM=setting)
    app = create_app(engine.settings, engine=engine)  # as gunicorn's worker builds it
    try:
        trimmer = app.extensions.get("trimmer")
        assert (trimmer is not None) is trimming
        assert trimmer is None or trimmer._thread.is_alive()
        client: Any = app.test_client()
        assert client.get("/metrics").status_code == 200
    finally:
        app.extensions["sweeper"].stop()
        if "trimmer" in app.extensions:
            app.extensions["trimmer"].stop()
