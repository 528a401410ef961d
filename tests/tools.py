"""Shared helpers for tests that run the real tools (promtool, amtool, kubectl, hadolint)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def tool(name: str) -> str:
    """Path of a test tool on PATH or in the venv; fails the test when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"{name} not found: run `make tools`")
    return found


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output for the assertion message."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
