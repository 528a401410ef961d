"""PyGithub (about 15 MB a process) is imported only by a receiver that uses GitHub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys
from receiver.app import create_app
from receiver.intake.payload import parse_alert
from tests.support import alert

app = create_app(start_sweeper=False)
outcome = app.extensions["rollback"].handle_alert(parse_alert(alert(), 0))
print(outcome.reason, "github" in sys.modules)
"""


@pytest.mark.parametrize(
    ("repo", "imported"), [("file:///nowhere/gitops.git", False), ("acme/gitops", True)]
)
def test_pygithub_is_imported_only_for_the_github_provider(
    tmp_path: Path, repo: str, imported: bool
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITOPS_", "INCIDENT_", "REDIS_", "ROLLBACK_"))
    }
    env.update(
        GITOPS_REPO=repo,
        GITOPS_PATH="k8s/api",
        GITOPS_CACHE_DIR=str(tmp_path / "cache"),
        GITHUB_API_URL="http://127.0.0.1:9",  # nothing listens: the inspect fails, as it may
        SERVICE_NAME="api",
        DRY_RUN="true",
        BLACKOUT_WINDOWS="none",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reason, github = done.stdout.split()
    assert reason == "no_target"  # neither repository can be read here
    assert github == str(imported)
