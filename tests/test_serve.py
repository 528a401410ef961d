"""`rollback-receiver serve` under gunicorn: workers, metrics across them, logs, config."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis as redis_lib
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REAL_REDIS_URL
from tests.serving import Served
from tests.support import alert, payload

SECRETS = {
    "WEBHOOK_TOKEN": "hook-s3cr3t-value",
    "ADMIN_TOKEN": "adm1n-s3cr3t-value",
    "GITOPS_TOKEN": "ghp_s3cr3tgithubtoken",
    # Loopback URLs that refuse at once: notifications fail fast and are counted.
    "SLACK_WEBHOOK": "http://127.0.0.1:9/services/T000/B000/s3cr3tslack",
    "PAGERDUTY_KEY": "pd-routing-key-s3cr3t-0123456789",
}


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def served(real_redis: redis_lib.Redis, tmp_path: Path) -> Iterator[Served]:
    env = {
        "REDIS_URL": REAL_REDIS_URL,
        "REDIS_PREFIX": "serve:",
        "BLACKOUT_WINDOWS": "none",
        "SERVICE_NAME": "app",
        "LOG_FILE": str(tmp_path / "receiver.log"),
        "PROMETHEUS_URL": "http://127.0.0.1:9",
        "PAGERDUTY_URL": "http://127.0.0.1:9/v2/enqueue",
        **SECRETS,
    }
    server = Served(env, workers=2, tmp=tmp_path)
    yield server
    server.stop()


def test_two_workers_count_every_request_in_metrics(
    served: Served, real_redis: redis_lib.Redis
) -> None:
    auth = {"Authorization": f"Bearer {SECRETS['WEBHOOK_TOKEN']}"}
    sent = 0
    for _round in range(10):  # until both workers have counted requests (bounded)
        bodies = [
            payload(alert(f"svc{i % 3}", starts_at=f"2026-11-26T10:{i:02d}:00Z")) for i in range(20)
        ]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda b: served.post("/webhook", b, **auth), bodies))
        sent += len(bodies)
        assert [a.status_code for a in answers] == [200] * 20
        assert {a.json()["alerts"][0]["reason"] for a in answers} == {"no_target"}
        if len(served.metric_pids()) >= 2:
            break
    assert len(served.metric_pids()) >= 2, "only one worker served requests"
    assert served.post("/webhook", payload(alert())).status_code == 401
    real_redis.set("serve:lock:svc1", "rb-elsewhere", px=10000)  # a rollback run by another replica
    real_redis.sadd("serve:services", "svc0", "svc1")  # services that replica configures and ran
    text = requests.get(served.url + "/metrics", timeout=5).text
    assert samples(text, "rollback_webhook_requests_total")[(("code", "200"),)] == sent
    assert samples(text, "rollback_webhook_requests_total")[(("code", "401"),)] == 1
    skipped = samples(text, "rollback_skipped_total")
    assert sum(v for k, v in skipped.items() if ("reason", "no_target") in k) == sent
    assert skipped[(("reason", "no_target"), ("service", "_unconfigured"))] == sent  # bounded
    decisions = samples(text, "rollback_decisions_total")
    assert decisions[(("decision", "skipped"), ("reason", "no_target"))] == sent
    in_progress = samples(text, "rollback_in_progress")
    assert in_progress[(("service", "svc1"),)] == 1
    assert in_progress[(("service", "svc0"),)] == 0
    assert samples(text, "rollback_webhook_duration_seconds_count")[()] == sent + 1


def test_no_secret_reaches_the_logs_or_the_api(served: Served, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {SECRETS['WEBHOOK_TOKEN']}"}
    served.post("/webhook", payload(alert("app")), **auth)
    served.post("/webhook", payload(alert("app")), Authorization="Bearer wrong-token-value")
    admin = {"Authorization": f"Bearer {SECRETS['ADMIN_TOKEN']}"}
    history = requests.get(served.url + "/api/v1/rollbacks", headers=admin, timeout=5)
    assert history.status_code == 200 and history.json()["rollbacks"]
    status = requests.get(served.url + "/api/v1/status", headers=admin, timeout=5)
    metrics_text = requests.get(served.url + "/metrics", timeout=5).text
    served.stop()
    logs = served.logs() + (tmp_path / "receiver.log").read_text()
    decision_lines = [
        json.loads(line)
        for line in (tmp_path / "receiver.log").read_text().splitlines()
        if '"decision"' in line
    ]
    assert decision_lines and {
        "rollback_id",
        "service",
        "fingerprint",
        "decision",
        "reason",
    } <= set(decision_lines[0])
    for value in SECRETS.values():
        for where, text in (
            ("logs", logs),
            ("history", history.text),
            ("status", status.text),
            ("metrics", metrics_text),
        ):
            assert value not in text, f"{value[:6]}… leaked into {where}"


def test_a_bad_variable_stops_start_up_with_one_line_naming_it(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).parent / "rollback-receiver")
    for env, name in (
        ({"COOLDOWN_MINUTES": "soon"}, "COOLDOWN_MINUTES"),
        ({"BLACKOUT_WINDOWS": "Funday 00:00-06:00"}, "BLACKOUT_WINDOWS"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ):
        result = subprocess.run(
            [exe, "serve"],
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(("operator", "workers_get"), [(None, "2"), ("0", "0"), ("4", "4")])
def test_workers_run_with_two_malloc_arenas_unless_the_operator_says_otherwise(
    operator: str | None, workers_get: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc keeps what a request freed in its thread's arena; 0 is glibc's own default."""
    if operator is None:
        monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    else:
        monkeypatch.setenv("MALLOC_ARENA_MAX", operator)
    server = Served({"BLACKOUT_WINDOWS": "none"}, workers=1, tmp=tmp_path)
    try:
        (worker,) = server.worker_pids()
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        assert f"MALLOC_ARENA_MAX={workers_get}".encode() in environ
    finally:
        server.stop()
