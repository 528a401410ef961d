"""The environment the git provider's git processes inherit: the receiver's, without GIT_*.

Copying `os.environ` decodes every variable in Python, and in a Kubernetes pod the
environment holds a few variables per Service of the namespace (service links): that cost
every git command a tenth of a millisecond or more. The copy is kept, and made again only
when the environment changed (compared as CPython keeps it: one dict of bytes).
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_kept: tuple[dict[bytes, bytes], dict[str, str]] | None = None  # (raw environment, copy)


def inherited_environment() -> dict[str, str]:
    """`os.environ` without its GIT_* variables (which would redirect git), a fresh dict."""
    global _kept
    raw = getattr(os.environ, "_data", None)  # CPython's encoded environment, else None
    kept = _kept
    if isinstance(raw, dict) and kept is not None and kept[0] == raw:
        return dict(kept[1])
    copy = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    if isinstance(raw, dict):
        with _lock:
            _kept = (dict(raw), copy)
    return dict(copy)
