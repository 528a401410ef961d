"""After a /metrics scrape a worker hands its allocator's free pages back (glibc's malloc_trim)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
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


@pytest.mark.parametrize(("setting", "trims"), [(None, 1), ("false", 0)])
def test_a_scrape_releases_free_memory_once_answered_unless_turned_off(
    setting: str | None,
    trims: int,
    make_engine: Callable[..., Engine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(True) or True)
    engine = make_engine(RECEIVER_MALLOC_TRIM=setting)
    client: Any = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    response = client.get("/metrics")
    assert response.status_code == 200 and b"rollback_decisions_total" in response.data
    response.close()
    assert len(calls) == trims
    assert client.get("/healthz").status_code == 200 and len(calls) == trims  # scrapes only
