"""The Redis databases the tests use, one set per pytest-xdist worker.

`make test` runs the suite on two workers (`pytest -n 2`). Tests that flush their database
must not share it with a test running at the same time in the other worker, so worker N
takes the configured database number minus N (gw0: 13 and 11, gw1: 12 and 10). Without
xdist (a single process) the configured URLs are used as they are.
"""

from __future__ import annotations

import os
import re


def worker_index() -> int:
    """0 for the first xdist worker (or no xdist), 1 for the second, and so on."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = re.sub(r"\D", "", name)
    return int(digits) if digits else 0


def redis_url(variable: str, default: str) -> str:
    """The URL of `variable` (else `default`), its database moved down by the worker index."""
    url = os.environ.get(variable, default)
    base, _, db = url.rpartition("/")
    if not db.isdigit():
        raise RuntimeError(f"{variable} must end in a database number: {url!r}")
    number = int(db) - worker_index()
    if number < 0:
        raise RuntimeError(f"{variable}: no Redis database left for worker {worker_index()}")
    return f"{base}/{number}"
