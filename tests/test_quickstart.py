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

from tests.procs import ALERTMANAGER_BINARY, free_port

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


def first_screen() -> str:
    """The README up to its first second-level heading after the quick start."""
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Documentation", 1)[0]


def trigger_alerts() -> set[str]:
    """Shipped alerts the receiver acts on: they carry a rollback_tier label."""
    import yaml

    names = set()
    for path in (ROOT / "alerts").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and rule.get("labels", {}).get("rollback_tier"):
                    names.add(rule["alert"])
    return names


def test_the_readme_first_screen_names_every_trigger_and_the_weekend_blackout() -> None:
    """Every shipped trigger (SLO-violation ones too) and the default blackout are on top."""
    from receiver.config import Settings

    top = first_screen().split("## Try it", 1)[0]
    triggers = trigger_alerts()
    assert {"TriggerCriticalRollback", "SLOAvailabilityLow"} <= triggers
    for name in triggers:
        assert name in top, name
    default = "; ".join(w.text for w in Settings.from_env({}).blackout_windows)
    assert f"BLACKOUT_WINDOWS={default}" in top
    assert "weekend" in top
    assert "rm -rf .dev" in top


def test_make_run_keeps_everything_in_dev_so_rm_rf_dev_starts_over() -> None:
    """The README's `rm -rf .dev` matches where scripts/run-dev.sh puts its state."""
    script = (ROOT / "scripts" / "run-dev.sh").read_text()
    assert 'dev="${DEV_DIR:-$PWD/.dev}"' in script
    assert "--storage.path=.dev/am" in first_screen()


def test_the_alertmanager_walk_through_prints_what_the_readme_says(tmp_path: Path) -> None:
    """A real Alertmanager in front of `make run`: history shows the dry-run record."""
    from tests.tools import run, tool

    screen = first_screen()
    for promised in ("emergency", "skipped", "dry_run", "by alertmanager"):
        assert promised in screen
    port, am_port = free_port(), free_port()
    config = tmp_path / "am.yml"
    config.write_text(
        (ROOT / "examples" / "alertmanager-local.yml")
        .read_text()
        .replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    )
    env = {
        **os.environ,
        "PORT": str(port),
        "DEV_DIR": str(tmp_path / "dev"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GITOPS_CACHE_DIR": str(tmp_path / "cache"),
    }
    for name in ("REDIS_URL", "DRY_RUN", "ADMIN_TOKEN", "SERVICE_NAME"):
        env.pop(name, None)
    url = f"http://127.0.0.1:{port}"
    receiver_log = (tmp_path / "run.log").open("wb")
    receiver = subprocess.Popen(
        ["bash", "scripts/run-dev.sh"],
        cwd=ROOT,
        env=env,
        stdout=receiver_log,
        stderr=subprocess.STDOUT,
    )
    am_log = (tmp_path / "am.log").open("wb")
    alertmanager = subprocess.Popen(
        [
            ALERTMANAGER_BINARY,
            f"--config.file={config}",
            "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{am_port}",
            f"--storage.path={tmp_path / 'am'}",
        ],
        stdout=am_log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(200):
            try:
                if requests.get(url + "/healthz", timeout=0.5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        added = None
        for _ in range(100):
            added = run(
                tool("amtool"),
                f"--alertmanager.url=http://127.0.0.1:{am_port}",
                "alert",
                "add",
                "TriggerEmergencyRollback",
                "service=app",
                "namespace=production",
                "rollback_tier=emergency",
                "severity=critical",
            )
            if added.returncode == 0:
                break
            time.sleep(0.1)
        assert added is not None and added.returncode == 0, added and added.stderr
        history = ""
        for _ in range(60):
            result = subprocess.run(
                [str(Path(sys.executable).parent / "rollback-receiver"), "history"],
                env={**env, "RECEIVER_URL": url, "ADMIN_TOKEN": "dev-admin-token"},
                capture_output=True,
                text=True,
                timeout=30,
            )
            history = result.stdout
            if "dry_run" in history:
                break
            time.sleep(0.25)
        assert "app" in history and "emergency" in history, history
        assert "skipped" in history and "dry_run" in history, history
        assert "alertmanager" in history, history
    finally:
        for proc in (alertmanager, receiver):
            proc.send_signal(signal.SIGTERM)
            proc.wait(40)
        receiver_log.close()
        am_log.close()
