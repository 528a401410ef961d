"""`make bench` (memory): RSS per gunicorn worker along many deliveries, /metrics scraped.

Starts a fresh `rollback-receiver serve --workers 2` on BENCH_RSS_SERVICES services (dry run,
a local GitOps repo, the machine's Redis: BENCH_REDIS_URL, flushed before and after) and posts
N deliveries (`--deliveries N`, BENCH_RSS_DELIVERIES, default 5000) as Alertmanager sends them
over days (episodes opened, repeated and resolved, unconfigured services, other alerts) while
/metrics is scraped every BENCH_SCRAPE_SECONDS, as Prometheus would. After each tenth of the
run it reads each worker's VmRSS twice: busy (as the last delivery is answered) and at rest
(BENCH_RSS_SETTLE_SECONDS later, no request or scrape meanwhile: past the workers' next
malloc_trim). Prints both at 10 %, 50 % and 100 % with the /metrics size and series and the
Redis keys, the growth over the last half, and its trend: the least-squares slope through the
six at-rest readings from 50 % to 100 %, times the half's length, beside how far those
readings stray from that line. Beside RSS, at rest, each worker's VmData: the memory it has
reserved for data (heap, malloc arenas, Python's arenas, thread stacks), touched or not, which
bounds what RSS can grow into without asking the system for more. The figures are not
asserted (docs/performance.md records runs).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhook_bench import (
    BIN,
    REDIS_URL,
    ROOT,
    THREADS,
    alert,
    delivery,
    free_port,
    gitops_repo,
    load,
    receiver_env,
    stop,
    wait_ready,
    worker_rss_mb,
)

RSS_DELIVERIES = int(os.environ.get("BENCH_RSS_DELIVERIES", "5000"))
RSS_SERVICES = int(os.environ.get("BENCH_RSS_SERVICES", "100"))
SCRAPE_SECONDS = float(os.environ.get("BENCH_SCRAPE_SECONDS", "1"))
SETTLE_SECONDS = float(os.environ.get("BENCH_RSS_SETTLE_SECONDS", "2.5"))
CHECKPOINTS = (0.1, 0.5, 1.0)
RECEIVER = [str(BIN / "rollback-receiver"), "serve", "--workers", "2"]


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


@contextmanager
def scraping(url: str) -> Iterator[tuple[list[int], threading.Event]]:
    """GET /metrics every SCRAPE_SECONDS, beside the load, as Prometheus does: (count, pause).

    While `pause` is set no scrape starts (the at-rest readings: no request at all)."""
    done, pause, scrapes = threading.Event(), threading.Event(), [0]

    def scrape() -> None:
        with requests.Session() as session:
            while not done.wait(SCRAPE_SECONDS):
                if not pause.is_set():
                    scrapes[0] += session.get(url + "/metrics", timeout=10).ok

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        yield scrapes, pause
    finally:
        done.set()
        thread.join(30)


def trend(readings: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line through (share, MB): its rise over the readings' span, largest miss."""
    n = len(readings)
    mean_x = sum(x for x, _ in readings) / n
    mean_y = sum(y for _, y in readings) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in readings) / sum(
        (x - mean_x) ** 2 for x, _ in readings
    )
    miss = max(abs(y - mean_y - slope * (x - mean_x)) for x, y in readings)
    return slope * (readings[-1][0] - readings[0][0]), miss


def memory(tmp: Path, repo: str, deliveries: int, client: redis.Redis) -> None:
    """RSS per worker along `deliveries` of the production mix, /metrics scraped meanwhile."""
    payloads = production_mix(deliveries, RSS_SERVICES)
    busy: dict[float, dict[int, float]] = {}
    rest: dict[float, dict[int, float]] = {}
    reserved: dict[float, dict[int, float]] = {}
    sizes: dict[float, tuple[int, int, int]] = {}
    with (
        serving(RECEIVER, receiver_env(tmp, repo, RSS_SERVICES)) as (url, pid),
        scraping(url) as (scrapes, pause),
    ):
        started, done, errors, settled = time.perf_counter(), 0, 0.0, 0.0
        for tenth in range(1, 11):
            upto = deliveries * tenth // 10
            errors += load(url, payloads[done:upto])[1]
            done = upto
            share = tenth / 10
            busy[share] = worker_rss_mb(pid)
            exposition = requests.get(url + "/metrics", timeout=10).text
            series = sum(1 for line in exposition.splitlines() if not line.startswith("#"))
            sizes[share] = (len(exposition.encode()), series, int(client.dbsize()))
            pause.set()  # a scrape already going on ends within the settle time
            time.sleep(SETTLE_SECONDS)
            settled += SETTLE_SECONDS
            rest[share] = worker_rss_mb(pid)
            reserved[share] = worker_rss_mb(pid, "VmData")
            pause.clear()
        elapsed = time.perf_counter() - started - settled
    print(
        f"memory run: {deliveries} deliveries over {RSS_SERVICES} services in {elapsed:.0f} s "
        f"(and {settled:g} s at rest), {THREADS} client threads, 2 gunicorn workers, "
        f"{errors:.0f} errors; /metrics scraped {scrapes[0]} times (every {SCRAPE_SECONDS:g} s)"
    )
    workers, nan = sorted(rest[1.0]), float("nan")
    print(
        f"{'deliveries':<16}"
        + "".join(f"{'worker ' + str(w) + ' busy/rest':>26}" for w in workers)
        + f"{'/metrics bytes':>16}{'series':>8}{'Redis keys':>12}"
    )
    for share in CHECKPOINTS:
        size, series, keys = sizes[share]
        b, r = busy[share], rest[share]
        print(
            f"{f'{round(share * deliveries)} ({share:.0%})':<16}"
            + "".join(f"{b.get(w, nan):>13.1f} / {r.get(w, nan):.1f} MB" for w in workers)
            + f"{size:>16}{series:>8}{keys:>12}"
        )
    for name, samples in (("busy", busy), ("at rest", rest)):
        half, end = samples[0.5], samples[1.0]
        print(
            f"RSS growth over the last half (50 % -> 100 %), {name}: "
            + ", ".join(f"{end[w] - half.get(w, nan):+.1f} MB" for w in workers)
        )
    half, end = reserved[0.5], reserved[1.0]
    print(
        "reserved for data (VmData) at rest, 50 % -> 100 %: "
        + ", ".join(
            f"{half.get(w, nan):.1f} -> {end[w]:.1f} MB ({end[w] - half.get(w, nan):+.1f})"
            for w in workers
        )
    )
    last_half = [share for share in sorted(rest) if share >= 0.5]
    trends = [trend([(x, rest[x][w]) for x in last_half if w in rest[x]]) for w in workers]
    told = [f"{rise:+.2f} MB (readings within {miss:.2f} MB of it)" for rise, miss in trends]
    print(
        "trend over the last half, at rest (least squares through 50 %..100 %): "
        + ", ".join(told)
        + f"; largest worker {max(rest[1.0].values()):.0f} MB (goal < 80 MB, no growth)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--deliveries",
        type=int,
        default=RSS_DELIVERIES,
        metavar="N",
        help="deliveries of the run (default $BENCH_RSS_DELIVERIES, else 5000)",
    )
    args = parser.parse_args()
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        memory(tmp, gitops_repo(tmp, max(4, RSS_SERVICES)), args.deliveries, client)
    client.flushdb()


if __name__ == "__main__":
    main()
