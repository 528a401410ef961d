"""The original design's scripts in scripts/: thin `exec` wrappers over the CLI, run for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.procs import SHIPPED_RULES, Answer, LoopbackServer, Prometheus, free_port
from tests.prom import Exporter
from tests.redis_dbs import redis_url

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
WRAPPERS = (
    "check-error-budget.sh",
    "auto-rollback-on-error-budget.sh",
    "rollback-gitops-manifest.sh",
    "rollback-argocd-app.sh",
)
REDIS_URL = redis_url("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# The original design's CI step, verbatim but for the message.
CI_SNIPPET = """./scripts/check-error-budget.sh
if [ $? -ge 1 ]; then
  echo "error budget exhausted: deploy blocked"
  exit 1
fi
echo "deploy allowed"
"""


def script_env(**extra: str) -> dict[str, str]:
    """A minimal environment: the console script of this interpreter's venv first on PATH."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "BLACKOUT_WINDOWS": "none",
        "ERROR_BUDGET": "0.001",
        "SLO_WINDOW": "30d",
        "NAMESPACE": "production",
    }
    env.update(extra)
    return env


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("name", WRAPPERS)
def test_each_script_is_an_executable_shellcheck_clean_exec_wrapper(name: str) -> None:
    """Every wrapper is executable, passes shellcheck and hands over to the CLI with exec."""
    path = SCRIPTS / name
    assert os.access(path, os.X_OK), f"{name} is not executable"
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert 'exec "${ROLLBACK_RECEIVER:-rollback-receiver}" ' in text
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (scripts/ensure-tools.sh installs it)")
    result = run(["shellcheck", str(path)], dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr


# -- check-error-budget.sh --------------------------------------------------------------------

SERVICES = {"calm": 0.0001, "crit": 0.00085, "emer": 0.5}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus with the shipped rules, scraping services at known error ratios."""
    with Exporter() as exporter:
        for service, ratio in SERVICES.items():
            exporter.traffic.set(service, rps=1000, error_ratio=ratio)
        prom = Prometheus(
            tmp_path_factory.mktemp("scripts"), targets=[exporter.address], rule_files=SHIPPED_RULES
        ).start()
        try:
            prom.wait_for("slo:error_budget_consumed:ratio >= 0", lambda r: len(r) == len(SERVICES))
            yield prom
        finally:
            prom.stop()


@pytest.mark.parametrize(("service", "code"), [("calm", 0), ("crit", 2), ("emer", 3)])
def test_check_error_budget_exits_with_the_tier_of_service_name(
    prometheus: Prometheus, service: str, code: int
) -> None:
    """check-error-budget.sh reads PROMETHEUS_URL and SERVICE_NAME and exits as `check` does."""
    env = script_env(PROMETHEUS_URL=prometheus.url, SERVICE_NAME=service)
    result = run([str(SCRIPTS / "check-error-budget.sh"), "--json"], env)
    assert result.returncode == code, result.stderr
    assert json.loads(result.stdout)["service"] == service


def test_check_error_budget_exits_4_when_prometheus_cannot_be_reached() -> None:
    """An unreachable PROMETHEUS_URL is exit 4, could not evaluate."""
    env = script_env(PROMETHEUS_URL=f"http://127.0.0.1:{free_port()}", SERVICE_NAME="calm")
    result = run([str(SCRIPTS / "check-error-budget.sh")], env)
    assert result.returncode == 4
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("service", "blocked"), [("calm", False), ("crit", True)])
def test_the_original_ci_snippet_blocks_a_deploy_only_when_the_budget_burns(
    prometheus: Prometheus, service: str, blocked: bool
) -> None:
    """`./scripts/check-error-budget.sh; if [ $? -ge 1 ]; then ... exit 1; fi` works as written."""
    env = script_env(PROMETHEUS_URL=prometheus.url, SERVICE_NAME=service)
    result = run(["sh", "-c", CI_SNIPPET], env)
    assert result.returncode == (1 if blocked else 0)
    assert ("deploy blocked" in result.stdout) is blocked
    assert ("deploy allowed" in result.stdout) is not blocked


# -- auto-rollback-on-error-budget.sh ---------------------------------------------------------


def test_auto_rollback_runs_one_monitor_pass_and_exits_0_when_nothing_fires(
    prometheus: Prometheus,
) -> None:
    """auto-rollback-on-error-budget.sh is `monitor --once`: one evaluation, exit 0."""
    env = script_env(
        PROMETHEUS_URL=prometheus.url,
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX="scripts-test:",
        SERVICE_NAME="calm",
        ROLLBACK_ENABLED="false",
    )
    try:
        result = run([str(SCRIPTS / "auto-rollback-on-error-budget.sh")], env)
    finally:
        store = redis.Redis.from_url(REDIS_URL)
        for key in store.scan_iter("scripts-test:*", count=1000):
            store.delete(key)
        store.close()
    assert result.returncode == 0, result.stdout + result.stderr


def test_auto_rollback_exits_4_without_a_shared_redis() -> None:
    """Without REDIS_URL monitor refuses (exit 4): the embedded store is not shared."""
    env = script_env(PROMETHEUS_URL=f"http://127.0.0.1:{free_port()}", SERVICE_NAME="calm")
    result = run([str(SCRIPTS / "auto-rollback-on-error-budget.sh")], env)
    assert result.returncode == 4
    assert "REDIS_URL" in result.stderr


# -- rollback-gitops-manifest.sh / rollback-argocd-app.sh -------------------------------------


class FakeReceiverAPI(LoopbackServer):
    """POST /api/v1/rollbacks answering a set decision; keeps each body and Authorization."""

    def __init__(self, decision: str = "rollback", reason: str = "passed") -> None:
        super().__init__()
        self.decision, self.reason = decision, reason
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if (method, path) != ("POST", "/api/v1/rollbacks"):
            return 404, b'{"error": "not found"}', {"Content-Type": "application/json"}
        request = json.loads(body)
        with self.lock:
            self.calls.append((headers.get("Authorization", ""), request))
        record = {
            "id": "rb-1",
            "service": request["service"],
            "state": "running" if self.decision == "rollback" else "skipped",
            "reason": self.reason,
            "tier": "manual",
            "created_at": "2026-12-01T10:00:00Z",
        }
        answer = {"decision": self.decision, "reason": self.reason, "record": record}
        return 200, json.dumps(answer).encode(), {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("script", "mode", "variable", "field"),
    [
        ("rollback-gitops-manifest.sh", "gitops", "TARGET_COMMIT", "target_commit"),
        ("rollback-argocd-app.sh", "argocd", "TARGET_REVISION", "target_revision"),
    ],
)
def test_manual_rollback_scripts_send_the_original_variables_to_the_receiver(
    script: str, mode: str, variable: str, field: str
) -> None:
    """SERVICE_NAME, the target variable and ROLLBACK_REASON reach POST /api/v1/rollbacks."""
    with FakeReceiverAPI() as api:
        env = script_env(
            RECEIVER_URL=api.base_url,
            ADMIN_TOKEN="admin-secret-token",
            SERVICE_NAME="checkout",
            ROLLBACK_REASON="bad deploy 42",
            **{variable: "abc123"},
        )
        result = run([str(SCRIPTS / script)], env)
    assert result.returncode == 0, result.stdout + result.stderr
    [(authorization, body)] = api.calls
    assert authorization == "Bearer admin-secret-token"
    assert body["service"] == "checkout"
    assert body["mode"] == mode
    assert body[field] == "abc123"
    assert body["reason"] == "bad deploy 42"


@pytest.mark.parametrize("script", ["rollback-gitops-manifest.sh", "rollback-argocd-app.sh"])
def test_manual_rollback_scripts_exit_1_when_refused_and_4_when_unreachable(script: str) -> None:
    """A refusal (skipped cooldown) is exit 1; a receiver that cannot be reached is exit 4."""
    with FakeReceiverAPI(decision="skipped", reason="cooldown") as api:
        env = script_env(RECEIVER_URL=api.base_url, ADMIN_TOKEN="t", SERVICE_NAME="checkout")
        refused = run([str(SCRIPTS / script)], env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "cooldown" in refused.stdout + refused.stderr
    env = script_env(
        RECEIVER_URL=f"http://127.0.0.1:{free_port()}", ADMIN_TOKEN="t", SERVICE_NAME="x"
    )
    unreachable = run([str(SCRIPTS / script)], env)
    assert unreachable.returncode == 4
    assert "Traceback" not in unreachable.stderr
