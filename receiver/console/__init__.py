"""The operator console at /ui/: server-rendered pages over the engine (see docs/console.md)."""

from __future__ import annotations

from receiver.console.views import bp

__all__ = ["bp"]
