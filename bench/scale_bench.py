"""`make bench` (scale): one delivery of many alerts, GitHub calls, one rollback's requests, status.

Processes: the receiver app runs in this process on a threaded loopback server (the bench's
own thread only waits for its answer); the fake GitHub (tests/fakes, a real bare repo behind
GitHub's REST shapes) runs in a child process of its own (tests/fakes/github_process.py,
stopped by PID at the end), so its work does not share the receiver's GIL, and its calls are
read from its `/_fake/calls` endpoint; Redis is the machine's (BENCH_REDIS_URL, a fresh key
prefix per run, deleted after). Services are `svcNNN`, one folder each in one repository
(ROLLBACK_CONFIG); deliveries are decided in dry run so every alert goes through every check,
the GitHub inspect included, without starting rollbacks. Prints one table per figure; the
figures are not asserted (docs/performance.md records a run).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from receiver.act.gitops_github import HISTORIES  # noqa: E402
from receiver.app import create_app  # noqa: E402
from receiver.config import Settings  # noqa: E402
from tests.fakes import BareRepo  # noqa: E402
from tests.fakes.github_process import GitHubProcess  # noqa: E402
from tests.support import alert, live_server, payload  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
TOKEN = "ghp_bench_token"
CURVE = (1, 10, 100, 200, 500)
STATUS_REPEATS = 5  # status requests timed (after one warm-up); the median is shown
DEEP = "k8s/apps/checkout/overlays/prod/eu-west-1"
SHA = re.compile(r"[0-9a-f]{40}")


def folder(n: int) -> str:
    return DEEP if n == 0 else f"k8s/svc{n:03d}"


def seed(path: Path, count: int) -> BareRepo:
    bare = BareRepo.create(path)
    day = time.time() - 86400
    bare.commit_files(
        {f"{folder(n)}/deploy.yaml": "image: v1" for n in range(count)}, "v1", when=day
    )
    bare.commit_files(
        # an hour old: inside ROLLBACK_CHANGE_WINDOW (24h) however long the run takes
        {f"{folder(n)}/deploy.yaml": "image: v2" for n in range(count)},
        "v2",
        when=time.time() - 3600,
    )
    return bare


def settings_for(tmp: Path, count: int, github: GitHubProcess, prefix: str, **env: str) -> Settings:
    lines = ["services:"]
    for n in range(count):
        lines += [f"  svc{n:03d}:", f"    gitops: {{repo: acme/gitops, path: {folder(n)}}}"]
    config = tmp / f"services-{count}.yml"
    config.write_text("\n".join(lines) + "\n")
    base = {
        "ROLLBACK_CONFIG": str(config),
        "ROLLBACK_MODE": "gitops",
        "GITOPS_PROVIDER": "github",
        "GITHUB_API_URL": github.base_url,
        "GITOPS_TOKEN": TOKEN,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": prefix,
        "BLACKOUT_WINDOWS": "none",
        "ADMIN_TOKEN": "bench-admin-token",
        "STABILIZATION_SECONDS": "0",
        "MAX_CONCURRENT_ROLLBACKS": "3",
        "DRY_RUN": "true",
        "LOG_LEVEL": "ERROR",
    }
    return Settings.from_env({**base, **env})


@contextmanager
def receiver(settings: Settings) -> Iterator[tuple[str, Any]]:
    app = create_app(settings, start_sweeper=False)
    engine = app.extensions["rollback"]
    try:
        with live_server(app) as url:
            yield url, engine
    finally:
        engine.wait_idle(60)
        engine.shutdown(5)


def delivery(count: int, starts_at: str) -> dict[str, Any]:
    return payload(*[alert(f"svc{n:03d}", starts_at=starts_at) for n in range(count)])


def post(url: str, body: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    answer = requests.post(f"{url}/webhook", json=body, timeout=600)
    took = time.perf_counter() - started
    answer.raise_for_status()
    return took, answer.json()["alerts"]


def table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]], command: str) -> None:
    print(f"\n## {title}\n\ncommand: `{command}`\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


@contextmanager
def fake_alertmanager(black_hole: bool) -> Iterator[tuple[str, list[int]]]:
    """An Alertmanager answering `[]` to the silence list (counted), or one that never answers."""
    if not black_hole:
        from flask import Flask, jsonify

        app = Flask("alertmanager")
        asked: list[int] = []

        @app.get("/api/v2/silences")
        def silences() -> Any:
            asked.append(1)
            return jsonify([])

        with live_server(app) as url:
            yield url, asked
        return
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", []
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    client = redis.Redis.from_url(REDIS_URL)
    command = "make bench (bench/scale_bench.py)"
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        repo = seed(tmp / "gitops.git", max(CURVE))
        prefixes: list[str] = []
        github: GitHubProcess | None = None
        try:
            curve_rows = []
            for count in CURVE:
                HISTORIES.clear()
                prefix = f"bench{secrets.token_hex(3)}:"
                prefixes.append(prefix)
                # a fresh fake per point: nothing an earlier point read is cached on its side
                with (
                    GitHubProcess(repo, "acme/gitops", TOKEN) as github,
                    receiver(settings_for(tmp, count, github, prefix)) as (url, _engine),
                ):
                    before = len(github.calls())
                    cold_s, answers = post(url, delivery(count, "2026-11-26T12:00:00Z"))
                    cold = len(github.calls()) - before
                    before = len(github.calls())
                    warm_s, _ = post(url, delivery(count, "2026-11-26T13:00:00Z"))
                    warm = len(github.calls()) - before
                reasons = Counter(a["reason"] for a in answers)
                curve_rows.append(
                    (count, f"{cold_s:.2f}", cold, f"{warm_s:.2f}", warm, dict(reasons))
                )
            table(
                "One delivery of N alerts for N services (dry run, one repo + branch)",
                (
                    "alerts",
                    "answer s (cold)",
                    "GitHub calls (cold)",
                    "answer s (warm)",
                    "GitHub calls (warm)",
                    "decisions",
                ),
                curve_rows,
                command,
            )

            HISTORIES.clear()
            github = GitHubProcess(repo, "acme/gitops", TOKEN).start()
            prefix = f"bench{secrets.token_hex(3)}:"
            prefixes.append(prefix)
            env = {"DRY_RUN": "false", "MAX_CONCURRENT_ROLLBACKS": "50"}
            with receiver(settings_for(tmp, 1, github, prefix, **env)) as (url, engine):
                before = len(github.calls())
                _, (decided,) = post(
                    url, payload(alert("svc000", starts_at="2026-11-26T14:00:00Z"))
                )
                engine.wait_idle(60)
                made = github.calls()[before:]
            by_call = Counter(f"{method} {SHA.sub('{sha}', path)}" for method, path in made)
            rows = [(call, n) for call, n in by_call.items()] + [("total", len(made))]
            rows.append((f"(decision: {decided['decision']}, {decided['reason']})", ""))
            table(
                f"GitHub requests of one rollback of `{DEEP}`", ("request", "count"), rows, command
            )

            status_rows = []
            for black_hole in (False, True):
                with fake_alertmanager(black_hole) as (am_url, asked):
                    prefix = f"bench{secrets.token_hex(3)}:"
                    prefixes.append(prefix)
                    settings = settings_for(tmp, 500, github, prefix, ALERTMANAGER_URL=am_url)
                    with receiver(settings) as (url, _engine):
                        headers = {"Authorization": "Bearer bench-admin-token"}
                        requests.get(f"{url}/api/v1/status", headers=headers, timeout=60)
                        asked.clear()  # the first request warmed the process; measure the next
                        times = []
                        for _ in range(1 if black_hole else STATUS_REPEATS):
                            started = time.perf_counter()
                            answer = requests.get(
                                f"{url}/api/v1/status", headers=headers, timeout=60
                            )
                            times.append(time.perf_counter() - started)
                        took = statistics.median(times)
                    services = answer.json()["services"]
                    silence = services[0]["blackout"]["silence"]
                    status_rows.append(
                        (
                            "black hole" if black_hole else "answers",
                            len(services),
                            f"{took * 1000:.0f}",
                            "-" if black_hole else f"{len(asked) / len(times):g}",
                            json.dumps(silence),
                        )
                    )
            table(
                "GET /api/v1/status for 500 services",
                (
                    "Alertmanager",
                    "services",
                    f"ms (median of {STATUS_REPEATS})",
                    "Alertmanager calls per request",
                    "silence shown",
                ),
                status_rows,
                command,
            )
        finally:
            if github is not None:
                github.stop()
            for prefix in prefixes:
                keys = list(client.scan_iter(f"{prefix}*", count=1000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start : start + 500])


if __name__ == "__main__":
    main()
