"""`make bench`: webhook throughput and latency against a bare Flask app, same gunicorn setup.

Both servers run with 2 gunicorn workers (gthread, 4 threads) on loopback; the receiver uses
the machine's real Redis (db 14, flushed before and after) and a local GitOps repo in dry-run
mode, so every delivery goes through the whole decision pipeline. The load is a fixed number
of posts from several client threads with keep-alive sessions: mostly Alertmanager repeats of
active episodes (duplicate), plus resolved and non-trigger alerts.

The memory run (`--rss-deliveries N`, BENCH_RSS_DELIVERIES; 0 skips it, `--rss-only` runs it
alone) starts a fresh receiver on BENCH_RSS_SERVICES services and posts N deliveries as
Alertmanager sends them over days (episodes opened, repeated and resolved, unconfigured
services, other alerts) while /metrics is scraped every BENCH_SCRAPE_SECONDS, printing each
worker's VmRSS, the /metrics size and the Redis keys at 10 %, 50 % and 100 %.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
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
BIN = Path(sys.executable).parent
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
RSS_DELIVERIES = int(os.environ.get("BENCH_RSS_DELIVERIES", "5000"))
RSS_SERVICES = int(os.environ.get("BENCH_RSS_SERVICES", "100"))
SCRAPE_SECONDS = float(os.environ.get("BENCH_SCRAPE_SECONDS", "1"))
CHECKPOINTS = (0.1, 0.5, 1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if requests.get(url + "/healthz", timeout=0.5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def alert(service: str, status: str, fingerprint: str, alertname: str) -> dict[str, Any]:
    labels = {
        "alertname": alertname,
        "service": service,
        "namespace": "production",
        "severity": "critical",
    }
    if alertname.startswith("Trigger"):
        labels["rollback_tier"] = "emergency"
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "bench"},
        "startsAt": "2026-11-26T12:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T12:10:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def delivery(a: dict[str, Any]) -> bytes:
    """An Alertmanager v4 webhook body carrying one alert."""
    body = {
        "version": "4",
        "status": a["status"],
        "receiver": "bench",
        "groupKey": "{}",
        "alerts": [a],
        "groupLabels": {},
        "commonLabels": a["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
    }
    return json.dumps(body).encode()


def bodies() -> list[bytes]:
    """The delivery mix: 80 % repeats of active episodes, 10 % resolved, 10 % other alerts."""
    out = []
    for i in range(REQUESTS):
        service = f"svc{i % 4}"
        kind = i % 10
        if kind == 8:
            a = alert(service, "resolved", f"{i % 4:016x}", "TriggerEmergencyRollback")
        elif kind == 9:
            a = alert(service, "firing", f"{1000 + i % 4:016x}", "HighMemoryUsage")
        else:
            a = alert(service, "firing", f"{i % 4:016x}", "TriggerEmergencyRollback")
        out.append(delivery(a))
    return out


def production_mix(count: int, services: int, seed: int = 15) -> list[bytes]:
    """Deliveries as Alertmanager sends them over days, across `services` configured services.

    25 % first deliveries of a new episode (a new fingerprint; 1 in 10 for a service that is
    not configured, each with its own name), 55 % repeats of an open episode, 10 % resolves
    closing one, 10 % non-trigger alerts with their own fingerprints; at most 400 episodes
    are open at once (the oldest stops repeating).
    """
    rng = random.Random(seed)
    opened: list[dict[str, Any]] = []
    out = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.25 or not opened:
            unconfigured = rng.random() < 0.1
            service = f"unknown{i}" if unconfigured else f"svc{rng.randrange(services)}"
            a = alert(service, "firing", f"{2 * 10**6 + i:016x}", "TriggerEmergencyRollback")
            opened = [*opened[-399:], a]
        elif roll < 0.8:
            a = rng.choice(opened)
        elif roll < 0.9:
            a = opened.pop(rng.randrange(len(opened)))
            a = {**a, "status": "resolved", "endsAt": "2026-11-26T12:10:00Z"}
        else:
            service = f"svc{rng.randrange(services)}"
            a = alert(service, "firing", f"{3 * 10**6 + i:016x}", "HighMemoryUsage")
        out.append(delivery(a))
    return out


def load(url: str, payloads: list[bytes], answers: Counter[str] | None = None) -> dict[str, float]:
    """Post the payloads from THREADS keep-alive sessions; `answers` counts decision/reason."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    chunks = [payloads[i::THREADS] for i in range(THREADS)]

    def run(chunk: list[bytes]) -> None:
        nonlocal errors
        session = requests.Session()
        mine, bad, told = [], 0, Counter[str]()
        for body in chunk:
            t0 = time.perf_counter()
            r = session.post(
                url + "/webhook",
                data=body,
                timeout=10,
                headers={"Content-Type": "application/json"},
            )
            mine.append(time.perf_counter() - t0)
            bad += r.status_code != 200
            if answers is not None and r.status_code == 200:
                told.update(f"{a['decision']}/{a['reason']}" for a in r.json()["alerts"])
        session.close()
        with lock:
            latencies.extend(mine)
            errors += bad
            if answers is not None:
                answers.update(told)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


TICKS = os.sysconf("SC_CLK_TCK")


def family(pid: int) -> list[int]:
    """A process and its descendants (gunicorn's master and workers), from /proc."""
    out, todo = [], [pid]
    while todo and len(out) < 64:
        current = todo.pop()
        out.append(current)
        try:
            tasks = Path(f"/proc/{current}/task").iterdir()
            for task in tasks:
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
        except OSError:
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the server's master and workers."""
    total = 0
    for member in family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICKS


def worker_rss_mb(pid: int) -> dict[int, float]:
    """VmRSS of each worker (the master's own children, not their git runs), in MB, by pid."""
    sizes = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for worker in (task / "children").read_text().split():
            try:
                status = Path(f"/proc/{worker}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    sizes[int(worker)] = int(line.split()[1]) / 1024
    return sizes


def first_deliveries() -> list[bytes]:
    """Every delivery a new trigger episode (a new fingerprint): a full decision and a record."""
    return [
        delivery(alert(f"svc{i % 4}", "firing", f"{10**6 + i:016x}", "TriggerEmergencyRollback"))
        for i in range(REQUESTS)
    ]


def measured(url: str, pid: int, payloads: list[bytes]) -> dict[str, float]:
    """The load's figures plus the server's CPU seconds per 1,000 deliveries."""
    before = cpu_seconds(pid)
    figures = load(url, payloads)
    figures["cpu_per_1000"] = (cpu_seconds(pid) - before) * 1000 / max(len(payloads), 1)
    return figures


def gitops_repo(tmp: Path, services: int = 4) -> str:
    """A bare repository with two deploys of `services` folders k8s/svc<i> (file:// URL)."""
    work = tmp / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for version in ("1", "2"):
        for i in range(services):
            folder = work / "k8s" / f"svc{i}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "deploy.yaml").write_text(f"image: svc{i}:{version}\n")
        subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
        subprocess.run(
            [
                "git",
                "-C",
                str(work),
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@b",
                "commit",
                "-qm",
                f"deploy {version}",
            ],
            check=True,
        )
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp / "gitops.git")], check=True)
    return f"file://{tmp / 'gitops.git'}"


def receiver_env(tmp: Path, repo: str, services: int) -> dict[str, str]:
    """The receiver's environment: `services` services of `repo`, git provider, dry run."""
    config = tmp / f"services-{services}.yml"
    config.write_text(
        "services:\n"
        + "".join(
            f'  svc{i}: {{gitops: {{repo: "{repo}", path: k8s/svc{i}}}}}\n' for i in range(services)
        )
    )
    return {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "ROLLBACK_CONFIG": str(config),
        "GITOPS_PROVIDER": "git",
        "ROLLBACK_MODE": "gitops",
        "DRY_RUN": "true",
        "BLACKOUT_WINDOWS": "none",
        "ROLLBACK_CHANGE_WINDOW": "0",
        "LOG_LEVEL": "WARNING",
        "GITOPS_CACHE_DIR": str(tmp / "cache"),
        "STABILIZATION_SECONDS": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }


RECEIVER = [str(BIN / "rollback-receiver"), "serve", "--workers", "2"]
BARE = [
    str(BIN / "gunicorn"),
    "--workers",
    "2",
    "--worker-class",
    "gthread",
    "--threads",
    "4",
    "--chdir",
    str(ROOT / "bench"),
    "bare_app:app",
]


@contextmanager
def serving(argv: list[str], env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A server on a free loopback port: its URL and its master's pid; stopped on the way out."""
    port = free_port()
    proc = subprocess.Popen(
        [*argv, "--bind", f"127.0.0.1:{port}"], env=env, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        yield url, proc.pid
    finally:
        stop(proc)


def throughput(tmp: Path, repo: str) -> None:
    """Repeats and first deliveries against the receiver, repeats against the bare app."""
    payloads = bodies()
    env = receiver_env(tmp, repo, 4)
    results = {}
    with serving(RECEIVER, env) as (url, pid):
        load(url, payloads[:200])  # warm-up: episodes recorded
        results["receiver"] = measured(url, pid, payloads)
        results["receiver, first deliveries"] = measured(url, pid, first_deliveries())
        rss = worker_rss_mb(pid)
    with serving(BARE, env) as (url, pid):
        load(url, payloads[:200])
        results["bare"] = measured(url, pid, payloads)
    print(
        f"webhook benchmark: {REQUESTS} posts, {THREADS} client threads, 2 gunicorn workers, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'server':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU s/1000':>10}"
    )
    for name, r in results.items():
        print(
            f"{name:<28} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['errors']:>7.0f} {r['cpu_per_1000']:>10.2f}"
        )
    bare_cpu = results["bare"]["cpu_per_1000"] or 1e-9
    print(
        f"server CPU per 1,000 deliveries (master + workers, /proc utime+stime): repeats "
        f"x{results['receiver']['cpu_per_1000'] / bare_cpu:.2f} the bare app (goal <= 1.5), "
        f"first deliveries x{results['receiver, first deliveries']['cpu_per_1000'] / bare_cpu:.2f}"
        f" (goal <= 4)"
    )
    print(
        f"RSS per worker after {2 * REQUESTS + 200} deliveries: "
        + ", ".join(f"{mb:.0f} MB" for mb in rss.values())
    )
    ratio = results["receiver"]["rps"] / results["bare"]["rps"]
    print(
        f"throughput ratio receiver/bare: {ratio:.2f} (target >= 0.6); "
        f"receiver p99 {results['receiver']['p99_ms']:.1f} ms (target < 25 ms)"
    )


@contextmanager
def scraping(url: str) -> Iterator[list[int]]:
    """GET /metrics every SCRAPE_SECONDS, beside the load, as Prometheus does; counts them."""
    done, scrapes = threading.Event(), [0]

    def scrape() -> None:
        with requests.Session() as session:
            while not done.wait(SCRAPE_SECONDS):
                scrapes[0] += session.get(url + "/metrics", timeout=10).ok

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        yield scrapes
    finally:
        done.set()
        thread.join(30)


def memory(tmp: Path, repo: str, deliveries: int, client: redis.Redis) -> None:
    """RSS per worker along `deliveries` of the production mix, /metrics scraped meanwhile."""
    payloads = production_mix(deliveries, RSS_SERVICES)
    answers: Counter[str] = Counter()
    samples: dict[float, tuple[dict[int, float], int, int, int]] = {}
    with (
        serving(RECEIVER, receiver_env(tmp, repo, RSS_SERVICES)) as (url, pid),
        scraping(url) as scrapes,
    ):
        started, done, errors = time.perf_counter(), 0, 0.0
        for tenth in range(1, 11):
            upto = deliveries * tenth // 10
            errors += load(url, payloads[done:upto], answers)["errors"]
            done = upto
            exposition = requests.get(url + "/metrics", timeout=10).text
            series = sum(1 for line in exposition.splitlines() if not line.startswith("#"))
            rss = worker_rss_mb(pid)
            samples[tenth / 10] = (rss, len(exposition.encode()), series, int(client.dbsize()))
        elapsed = time.perf_counter() - started
    print(
        f"memory run: {deliveries} deliveries over {RSS_SERVICES} services in {elapsed:.0f} s, "
        f"{THREADS} client threads, 2 gunicorn workers, {errors:.0f} errors; "
        f"/metrics scraped {scrapes[0]} times (every {SCRAPE_SECONDS:g} s)"
    )
    print("answers: " + ", ".join(f"{k} {v}" for k, v in answers.most_common()))
    workers = sorted(samples[1.0][0])
    print(
        f"{'deliveries':<16}"
        + "".join(f"{'worker ' + str(w):>14}" for w in workers)
        + f"{'/metrics bytes':>16}{'series':>8}{'Redis keys':>12}"
    )
    for share in CHECKPOINTS:
        rss, size, series, keys = samples[share]
        print(
            f"{f'{round(share * deliveries)} ({share:.0%})':<16}"
            + "".join(f"{rss.get(w, float('nan')):>11.1f} MB" for w in workers)
            + f"{size:>16}{series:>8}{keys:>12}"
        )
    half, end = samples[0.5][0], samples[1.0][0]
    print(
        "RSS growth over the last half (50 % -> 100 %): "
        + ", ".join(f"{end[w] - half.get(w, float('nan')):+.1f} MB" for w in workers)
        + f"; largest worker {max(end.values()):.0f} MB (goal < 80 MB, no growth)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rss-deliveries",
        type=int,
        default=RSS_DELIVERIES,
        metavar="N",
        help="deliveries of the memory run (0: none; default $BENCH_RSS_DELIVERIES, else 5000)",
    )
    parser.add_argument("--rss-only", action="store_true", help="the memory run alone")
    args = parser.parse_args()
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        repo = gitops_repo(tmp, max(4, RSS_SERVICES))
        if not args.rss_only:
            throughput(tmp, repo)
        if args.rss_deliveries > 0:
            client.flushdb()
            memory(tmp, repo, args.rss_deliveries, client)
    client.flushdb()


if __name__ == "__main__":
    main()
