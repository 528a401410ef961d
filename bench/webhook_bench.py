"""`make bench`: webhook throughput, latency and CPU against a bare Flask app, same gunicorn setup.

Both servers run with 2 gunicorn workers (gthread, 4 threads) on loopback, side by side; the
receiver uses the machine's real Redis (BENCH_REDIS_URL, default db 14, flushed before and
after) and a local GitOps repo in dry-run mode, so every delivery goes through the whole
decision pipeline. Four loads, each a fixed number of posts from several client threads with
keep-alive sessions: the receiver's repeats (mostly Alertmanager repeats of active episodes,
`duplicate`, plus resolved and non-trigger alerts), the receiver's first deliveries (every post
a new episode) twice, and the bare app's. First deliveries go once to a second receiver on the
GitHub provider, against the fake GitHub in its own process (tests/fakes/github_process.py,
serving the same repository; issue 15's goal is stated for it), and once to the receiver on
the git provider, whose every first delivery runs a `git fetch` of the clone (that child's own
CPU, reaped by the worker, is printed beside). Each load is split into BENCH_ROUNDS rounds run
in turn, so other jobs on a shared machine weigh on all four alike.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes import BareRepo  # noqa: E402
from tests.fakes.github_process import GitHubProcess  # noqa: E402

BIN = Path(sys.executable).parent
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))  # each load split into rounds, interleaved
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


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


def load(url: str, payloads: list[bytes]) -> tuple[list[float], int, float]:
    """Post the payloads from THREADS keep-alive sessions: latencies, errors, elapsed seconds."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    chunks = [payloads[i::THREADS] for i in range(THREADS)]

    def run(chunk: list[bytes]) -> None:
        nonlocal errors
        session = requests.Session()
        mine, bad = [], 0
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
        session.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return latencies, errors, time.perf_counter() - started


class Figures:
    """One server's figures under one load, summed over the rounds it was measured in."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.elapsed = 0.0
        self.cpu = 0.0
        self.child_cpu = 0.0

    def measure(self, url: str, pid: int, payloads: list[bytes]) -> None:
        """Post one round's payloads, adding their latencies and the server's CPU seconds."""
        before, children = cpu_seconds(pid), cpu_seconds(pid, reaped=True)
        latencies, errors, elapsed = load(url, payloads)
        self.cpu += cpu_seconds(pid) - before
        self.child_cpu += cpu_seconds(pid, reaped=True) - children
        self.latencies += latencies
        self.errors += errors
        self.elapsed += elapsed

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        return {
            "rps": len(ordered) / max(self.elapsed, 1e-9),
            "p50_ms": 1000 * statistics.median(ordered),
            "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
            "errors": self.errors,
            "cpu_per_1000": self.cpu * 1000 / max(len(ordered), 1),
            "child_cpu_per_1000": self.child_cpu * 1000 / max(len(ordered), 1),
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


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """utime + stime of the server's master and workers (`reaped`: of the children they reaped).

    The reaped children of a worker are its git runs; the master's are workers that ended,
    none during a load.
    """
    total = 0
    first = 13 if reaped else 11  # cutime, cstime (fields 16 and 17); utime, stime (14 and 15)
    for member in family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[first]) + int(fields[first + 1])
    return total / TICKS


def worker_rss_mb(pid: int, field: str = "VmRSS") -> dict[int, float]:
    """A /proc status figure of each worker (the master's own children, not their git runs).

    In MB, by pid: VmRSS (resident) by default; VmData is what the worker has reserved for
    data (heap, malloc arenas, Python's arenas, thread stacks), resident or not.
    """
    sizes = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for worker in (task / "children").read_text().split():
            try:
                status = Path(f"/proc/{worker}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith(field + ":"):
                    sizes[int(worker)] = int(line.split()[1]) / 1024
    return sizes


def first_deliveries() -> list[bytes]:
    """Every delivery a new trigger episode (a new fingerprint): a full decision and a record."""
    return [
        delivery(alert(f"svc{i % 4}", "firing", f"{10**6 + i:016x}", "TriggerEmergencyRollback"))
        for i in range(REQUESTS)
    ]


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


FIRST_GITHUB = "receiver, first deliveries, GitHub fake"
FIRST_GIT = "receiver, first deliveries, git provider"
GITHUB_REPO = "acme/gitops"
TOKEN = "ghp_bench_token"


def github_env(tmp: Path, env: dict[str, str], api_url: str) -> dict[str, str]:
    """The receiver's environment on the GitHub provider: the same 4 services, the fake's API."""
    config = tmp / "services-github.yml"
    config.write_text(
        "services:\n"
        + "".join(
            f"  svc{i}: {{gitops: {{repo: {GITHUB_REPO}, path: k8s/svc{i}}}}}\n" for i in range(4)
        )
    )
    return {
        **env,
        "ROLLBACK_CONFIG": str(config),
        "GITOPS_PROVIDER": "github",
        "GITHUB_API_URL": api_url,
        "GITOPS_TOKEN": TOKEN,
        "REDIS_PREFIX": "bench-github:",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics-github"),
    }


def main() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    payloads = bodies()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        repo = gitops_repo(tmp)
        env = receiver_env(tmp, repo, 4)
        receiver_port, bare_port = free_port(), free_port()
        receiver = subprocess.Popen(
            [
                str(BIN / "rollback-receiver"),
                "serve",
                "--bind",
                f"127.0.0.1:{receiver_port}",
                "--workers",
                "2",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        bare = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{bare_port}",
                "--workers",
                "2",
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--chdir",
                str(ROOT / "bench"),
                "bare_app:app",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        github = GitHubProcess(BareRepo(repo.removeprefix("file://")), GITHUB_REPO, TOKEN)
        on_github: subprocess.Popen[bytes] | None = None
        try:
            github.start()
            github_port = free_port()
            on_github = subprocess.Popen(
                [
                    str(BIN / "rollback-receiver"),
                    "serve",
                    "--bind",
                    f"127.0.0.1:{github_port}",
                    "--workers",
                    "2",
                ],
                env=github_env(tmp, env, github.base_url),
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
            )
            servers = {"receiver": receiver, "github": on_github, "bare": bare}
            urls = {
                "receiver": f"http://127.0.0.1:{receiver_port}",
                "github": f"http://127.0.0.1:{github_port}",
                "bare": f"http://127.0.0.1:{bare_port}",
            }
            firsts = first_deliveries()  # the same posts to both (their Redis prefixes differ)
            loads = {
                "receiver": ("receiver", payloads),
                FIRST_GITHUB: ("github", firsts),
                FIRST_GIT: ("receiver", firsts),
                "bare": ("bare", payloads),
            }
            measured = {name: Figures() for name in loads}
            for name, proc in servers.items():
                wait_ready(urls[name], proc)
                load(urls[name], payloads[:200])  # warm-up (the receiver: episodes recorded)
            order = list(measured)
            for round_ in range(ROUNDS):  # interleaved: other jobs on the machine hit all four
                turn = round_ % len(order)
                for name in order[turn:] + order[:turn]:
                    server, bodies_of = loads[name]
                    measured[name].measure(
                        urls[server], servers[server].pid, bodies_of[round_::ROUNDS]
                    )
            rss = worker_rss_mb(receiver.pid)
        finally:
            stop(receiver)
            if on_github is not None:
                stop(on_github)
            stop(bare)
            github.stop()
        results = {name: figures.summary() for name, figures in measured.items()}
    client.flushdb()
    print(
        f"webhook benchmark: {REQUESTS} posts per load in {ROUNDS} interleaved rounds, "
        f"{THREADS} client threads, 2 gunicorn workers, {os.cpu_count()} cores"
    )
    print(
        f"{'server, load':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'CPU s/1000':>10} {'git s/1000':>10}"
    )
    for name, r in results.items():
        print(
            f"{name:<42} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['errors']:>7.0f} {r['cpu_per_1000']:>10.2f} {r['child_cpu_per_1000']:>10.2f}"
        )
    bare_cpu = results["bare"]["cpu_per_1000"] or 1e-9
    ratio = {name: r["cpu_per_1000"] / bare_cpu for name, r in results.items()}
    print(
        f"server CPU per 1,000 deliveries (master + workers, /proc utime+stime): repeats "
        f"x{ratio['receiver']:.2f} the bare app (goal <= 1.5), first deliveries with the GitHub "
        f"fake x{ratio[FIRST_GITHUB]:.2f} (goal <= 4); with the git provider "
        f"x{ratio[FIRST_GIT]:.2f}, and its git fetches' own CPU "
        f"{results[FIRST_GIT]['child_cpu_per_1000']:.2f} s a 1,000 (no goal)"
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


if __name__ == "__main__":
    main()
