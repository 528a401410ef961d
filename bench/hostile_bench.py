"""`make bench`: how long the webhook holds a worker for crafted, hostile deliveries.

Runs the receiver in-process (Flask test client: the time measured is the request's own
work, which is what holds a gunicorn worker) against the machine's real Redis (db 14 by
default, flushed before and after) and a local GitOps repository with the git provider in
dry-run mode. Each payload is posted once; the slowest is printed last. The contract's bound:
a delivery of 1 MiB of hostile labels answers within 2 s.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from webhook_bench import gitops_repo

from receiver.app import create_app
from receiver.config import Settings

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
MIB = 1024 * 1024
BOUND_SECONDS = 2.0
ADMIN = {"Authorization": "Bearer bench-admin-token"}


def alert(i: int, **labels: str) -> dict[str, Any]:
    base = {
        "alertname": "TriggerEmergencyRollback",
        "rollback_tier": "emergency",
        "service": "svc0",
        "namespace": "production",
    }
    return {
        "status": "firing",
        "labels": {**base, **labels},
        "annotations": {"summary": "hostile"},
        "startsAt": "2026-11-26T12:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": f"{i:016x}",
    }


def delivery(alerts: list[dict[str, Any]]) -> bytes:
    body = {"version": "4", "status": "firing", "receiver": "bench", "alerts": alerts}
    return json.dumps(body).encode()


def filled(make: Callable[[int], dict[str, Any]], budget: int = MIB - 4096) -> bytes:
    """As many alerts from `make` as fit in about 1 MiB."""
    alerts: list[dict[str, Any]] = []
    size = 200
    while True:
        one = make(len(alerts))
        grown = size + len(json.dumps(one)) + 2
        if grown > budget:
            return delivery(alerts)
        alerts.append(one)
        size = grown


def payloads() -> dict[str, bytes]:
    k64 = 64 * 1024
    return {
        "one 64 KiB service label": delivery([alert(0, service="s" * k64)]),
        "one 64 KiB gitops_path label": delivery([alert(0, gitops_path="k8s/svc0/" + "a" * k64)]),
        "one 64 KiB argocd_app label": delivery([alert(0, argocd_app="a" * k64)]),
        "1 MiB of 64 KiB service labels": filled(lambda i: alert(i, service=f"{i}" + "s" * k64)),
        "1 MiB of 64 KiB gitops_path labels": filled(
            lambda i: alert(i, gitops_path=f"k8s/svc0/{i}/" + "a/" * (k64 // 2))
        ),
        "1 MiB of 1000-char unconfigured services": filled(
            lambda i: alert(i, service=f"{i}-" + "u" * 1000)
        ),
        "1 MiB of 1000-char dotted unconfigured services (log redaction)": filled(
            lambda i: alert(i, service=f"{i}." + "a." * 499)
        ),
        "1 MiB of 1000-char refused gitops_path labels": filled(
            lambda i: alert(i, gitops_path=f"k8s/other/{i}/" + "../" * 330)
        ),
        "1 MiB of lone surrogates": filled(
            lambda i: alert(i, service="\ud800" * 200), budget=MIB // 2
        ),
        "one 900 KiB dotted unread label, then its record read": delivery(
            [{**alert(0), "labels": {**alert(0)["labels"], "note": "a." * (450 * 1024)}}]
        ),
        "1 MiB of unread labels and annotations": delivery(
            [
                {
                    **alert(0),
                    "annotations": {"summary": '\u00e9\\"' * (MIB // 24)},
                    "labels": {**alert(0)["labels"], "extra": "\u2603" * (MIB // 24)},
                }
            ]
        ),
        "1 MiB nested arrays": b"[" * (MIB // 2) + b"]" * (MIB // 2),
        "1 MiB of escaped quotes in one string": b'{"alerts": [], "x": "'
        + b'\\"' * (MIB // 2 - 20)
        + b'"}',
    }


def main() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    results: list[tuple[float, int, str]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        repo = gitops_repo(Path(tmpdir))
        settings = Settings.from_env(
            {
                "SERVICE_NAME": "svc0",
                "GITOPS_REPO": repo,
                "GITOPS_PATH": "k8s/svc0",
                "GITOPS_PROVIDER": "git",
                "GITOPS_CACHE_DIR": str(Path(tmpdir) / "cache"),
                "ROLLBACK_MODE": "gitops",
                "DRY_RUN": "true",
                "BLACKOUT_WINDOWS": "none",
                "REDIS_URL": REDIS_URL,
                "LOG_LEVEL": "ERROR",
                "PROMETHEUS_URL": "http://127.0.0.1:9",
                "ADMIN_TOKEN": ADMIN["Authorization"].split()[1],
            }
        )
        app = create_app(settings, start_sweeper=False)
        web = app.test_client()
        try:
            for name, body in payloads().items():
                started = time.perf_counter()
                response = web.post("/webhook", data=body, content_type="application/json")
                elapsed = time.perf_counter() - started
                results.append((elapsed, response.status_code, f"{name} ({len(body)} bytes)"))
                print(f"{elapsed * 1000:8.1f} ms  {response.status_code}  {results[-1][2]}")
                if name.endswith("then its record read"):
                    started = time.perf_counter()
                    read = web.get("/api/v1/rollbacks?limit=1", headers=ADMIN)
                    elapsed = time.perf_counter() - started
                    results.append((elapsed, read.status_code, "GET /api/v1/rollbacks of it"))
                    print(f"{elapsed * 1000:8.1f} ms  {read.status_code}  {results[-1][2]}")
        finally:
            app.extensions["rollback"].shutdown(10)
            client.flushdb()
    slowest = max(results)
    verdict = "within" if slowest[0] <= BOUND_SECONDS else "OVER"
    print(
        f"slowest: {slowest[2]}: {slowest[0] * 1000:.1f} ms, "
        f"{verdict} the {BOUND_SECONDS:.0f} s bound"
    )
    if slowest[0] > BOUND_SECONDS:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
