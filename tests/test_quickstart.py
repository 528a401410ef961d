"""The README's quick start works exactly as written: make run, curl the sample, history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.procs import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_the_quick_start_gives_a_dry_run_decision_then_history(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "examples/alert-firing.json" in readme
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "DEV_DIR": str(tmp_path / "dev"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GITOPS_CACHE_DIR": str(tmp_path / "cache"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for name in ("REDIS_URL", "DRY_RUN", "ADMIN_TOKEN", "SERVICE_NAME"):
        env.pop(name, None)
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        ["bash", "scripts/run-dev.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(url + "/healthz", timeout=0.5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        body = json.loads((ROOT / "examples" / "alert-firing.json").read_text())
        (first,) = requests.post(url + "/webhook", json=body, timeout=10).json()["alerts"]
        assert (first["decision"], first["reason"]) == ("skipped", "dry_run")
        (second,) = requests.post(url + "/webhook", json=body, timeout=10).json()["alerts"]
        assert (second["reason"], second["rollback_id"]) == ("duplicate", first["rollback_id"])
        history = subprocess.run(
            [str(Path(sys.executable).parent / "rollback-receiver"), "history"],
            env={**env, "RECEIVER_URL": url, "ADMIN_TOKEN": "dev-admin-token"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert history.returncode == 0, history.stderr
        assert first["rollback_id"] in history.stdout and "dry_run" in history.stdout
        printed = (tmp_path / "run.log").read_text()
        assert "development admin token: dev-admin-token" in printed
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(40)
        log.close()


def test_the_laptop_alertmanager_config_passes_amtool() -> None:
    from tests.tools import run, tool

    result = run(tool("amtool"), "check-config", str(ROOT / "examples" / "alertmanager-local.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    routed = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ROOT / 'examples' / 'alertmanager-local.yml'}",
        "alertname=TriggerEmergencyRollback",
        "rollback_tier=emergency",
        "service=app",
    )
    assert routed.stdout.strip() == "rollback-receiver", routed.stdout + routed.stderr
