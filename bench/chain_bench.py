"""Chain latency: breach -> revert commit, against Prometheus + Alertmanager alone, same run.

One real Prometheus (1s scrape and evaluation, the shipped alerts/) sends every alert to two
real Alertmanagers loaded with the same shipped routing (timings shortened as in the e2e
suite): the first delivers to the receiver (gunicorn, real Redis, fake GitHub and Argo CD),
the second to a bare sink that only notes the arrival time. For each repetition a fresh
service's exporter switches to 50% errors (the breach) and the run records

  sink:   breach -> TriggerEmergencyRollback arrives at the bare sink (Prometheus + Alertmanager)
  commit: breach -> the receiver moves the branch ref to its revert commit (the whole chain)

and prints both, and commit - sink (the receiver's share), with p50 over the repetitions.
Usage: python bench/chain_bench.py [--reps N]. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from tests.e2e.conftest import (  # noqa: E402
    ADMIN_TOKEN,
    ARGOCD_PASSWORD,
    E2E_REDIS_URL,
    GITHUB_TOKEN,
    TRIGGER,
    WEBHOOK_TOKEN,
)
from tests.e2e.exporter import Exporter  # noqa: E402
from tests.e2e.stack import (  # noqa: E402
    BareSink,
    ChainPrometheus,
    shipped_alertmanager_config,
    wait_until,
)
from tests.fakes import BareRepo  # noqa: E402
from tests.fakes.argocd import FakeApp, FakeArgoCD  # noqa: E402
from tests.fakes.github_api import FakeGitHub  # noqa: E402
from tests.procs import Alertmanager  # noqa: E402
from tests.serving import Served  # noqa: E402


def version(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "?"


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}); {platform.platform()}; Python {platform.python_version()}"
        f"; {version(['prometheus', '--version'])}; "
        f"{version(['/usr/bin/prometheus-alertmanager', '--version'])}; "
        f"{version(['redis-server', '--version'])}"
    )


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Bench:
    """Everything the run starts, stopped in reverse order."""

    def __init__(self, reps: int, tmp: Path) -> None:
        self.reps = reps
        self.tmp = tmp
        self.services = [f"bench{i}-{secrets.token_hex(2)}" for i in range(reps)]
        self.stopping: list[Any] = []
        self.commit_at: dict[str, float] = {}
        self.first_write_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self.prefix = f"bench-{secrets.token_hex(4)}:"

    def stop(self) -> None:
        for part in reversed(self.stopping):
            try:
                part.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"warning: stopping {part.__class__.__name__}: {exc}", file=sys.stderr)
        client = redis_lib.Redis.from_url(E2E_REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    def _hook_ref_update(self, service: str) -> Any:
        def hook(call: Any) -> None:
            with self._lock:
                self.commit_at.setdefault(service, time.time())

        return hook

    def _hook_first_write(self, call: Any) -> None:
        text = json.dumps(call.body)
        with self._lock:
            for service in self.services:
                if f"k8s/{service}" in text:
                    self.first_write_at.setdefault(service, time.time())

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fakes' request lines
        self.exporter = Exporter().start()
        self.stopping.append(self.exporter)
        self.sink = BareSink().start()
        self.stopping.append(self.sink)
        repo = BareRepo.create(self.tmp / "gitops.git")
        now = time.time()
        repo.commit_files({"README.md": "gitops\n"}, "init", when=now - 7200)
        self.github = FakeGitHub(repo, "acme/gitops", GITHUB_TOKEN)
        self.github.start()
        self.stopping.append(self.github)
        argocd = FakeArgoCD(password=ARGOCD_PASSWORD)
        services: dict[str, Any] = {}
        for service in self.services:
            branch = f"env/{service}"
            path = f"k8s/{service}/deployment.yaml"
            good = repo.commit_files(
                {path: f"image: {service}:1.0.0\n"}, "good", branch="main", when=now - 3600
            )
            repo.git("update-ref", f"refs/heads/{branch}", good)
            bad = repo.commit_files(
                {path: f"image: {service}:1.1.0\n"}, "bad", branch=branch, when=now - 120
            )
            argocd.add(
                FakeApp(
                    name=f"{service}-prod",
                    revisions=[good, bad],
                    target_revision=branch,
                    resolve=lambda b=branch: repo.head(b),
                    automated={"prune": True},
                    ticks_to_finish=0,
                )
            )
            services[service] = {
                "namespace": "production",
                "gitops": {"repo": "acme/gitops", "path": f"k8s/{service}", "branch": branch},
                "argocd": {"app": f"{service}-prod"},
            }
            self.github.faults.on(
                "PATCH", rf"/git/refs?/heads/env/{service}$", self._hook_ref_update(service)
            )
            self.exporter.add(service)
        self.github.faults.on(
            "POST", r"/git/trees$", self._hook_first_write, times=len(self.services)
        )
        argocd.start()
        self.stopping.append(argocd)
        config_file = self.tmp / "rollback.yml"
        config_file.write_text(yaml.safe_dump({"services": services}), encoding="utf-8")
        self.served = Served(
            {
                "ROLLBACK_CONFIG": str(config_file),
                "SERVICE_NAME": self.services[0],
                "REDIS_URL": E2E_REDIS_URL,
                "REDIS_PREFIX": self.prefix,
                "BLACKOUT_WINDOWS": "none",
                "GITOPS_PROVIDER": "github",
                "GITOPS_TOKEN": GITHUB_TOKEN,
                "GITHUB_API_URL": self.github.base_url,
                "ARGOCD_SERVER": argocd.address,
                "ARGOCD_PLAINTEXT": "true",
                "ARGOCD_PASSWORD": ARGOCD_PASSWORD,
                "ROLLBACK_MODE": "both",
                "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
                "ADMIN_TOKEN": ADMIN_TOKEN,
                "STABILIZATION_SECONDS": "0",
                "VALIDATION_TIMEOUT_SECONDS": "20",
                "MAX_CONCURRENT_ROLLBACKS": "50",
                "LOG_LEVEL": "WARNING",
            },
            workers=2,
            tmp=self.tmp,
        )
        self.stopping.append(self.served)
        token_file = self.tmp / "token"
        token_file.write_text(WEBHOOK_TOKEN, encoding="utf-8")
        slack_file = self.tmp / "slack"
        slack_file.write_text(self.sink.base_url + "/services/T0/B0/slack", encoding="utf-8")
        to_receiver = Alertmanager(
            shipped_alertmanager_config(self.served.url + "/webhook", token_file, slack_file)
        ).start()
        self.stopping.append(to_receiver)
        to_sink = Alertmanager(
            shipped_alertmanager_config(self.sink.base_url + "/webhook", token_file, slack_file)
        ).start()
        self.stopping.append(to_sink)
        self.prometheus = ChainPrometheus(
            self.exporter.address,
            [f"127.0.0.1:{to_receiver.port}", f"127.0.0.1:{to_sink.port}"],
        ).start()
        self.stopping.append(self.prometheus)

    def run(self) -> list[tuple[str, float, float, float]]:
        # Let every service have a few seconds of healthy traffic first.
        wait_until(
            "healthy traffic of every service in Prometheus",
            lambda: len(self.prometheus.query("slo:sli_requests:rate1m")) >= len(self.services),
            30,
            interval=0.2,
        )
        time.sleep(2)
        results = []
        for service in self.services:
            breach = self.exporter.breach(service)

            def arrived(s: str = service) -> float | None:
                hits = [
                    a.at
                    for a in self.sink.for_service(s)
                    if a.path == "/webhook" and TRIGGER in a.alertnames
                ]
                return hits[0] if hits else None

            sink_at = wait_until(f"{TRIGGER} for {service} at the bare sink", arrived, 60, 0.005)
            commit_at = wait_until(
                f"the revert commit of {service}",
                lambda s=service: self.commit_at.get(s),
                60,
                0.005,
                detail=lambda: self.served.logs()[-2000:],
            )
            first_write = self.first_write_at.get(service, commit_at) - sink_at
            results.append((service, sink_at - breach, commit_at - breach, first_write))
            print(
                f"  {service:<16} sink {sink_at - breach:6.3f}s  commit {commit_at - breach:6.3f}s"
                f"  receiver {commit_at - sink_at:+.3f}s (first GitHub write "
                f"{first_write:+.3f}s)",
                flush=True,
            )
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(f"chain benchmark: {args.reps} repetitions")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="chain-bench-") as tmp:
        bench = Bench(args.reps, Path(tmp))
        try:
            bench.start()
            results = bench.run()
        finally:
            bench.stop()
    sink = [r[1] for r in results]
    commit = [r[2] for r in results]
    share = [r[2] - r[1] for r in results]
    first_write = [r[3] for r in results]
    print(f"breach -> bare sink (Prometheus + Alertmanager alone), p50: {p50(sink):.3f} s")
    print(f"breach -> revert commit (whole chain), p50:                 {p50(commit):.3f} s")
    print(
        f"receiver's share (commit - sink), p50: {p50(share):.3f} s "
        f"(min {min(share):.3f}, max {max(share):.3f}); target < 0.5 s: "
        f"{'met' if p50(share) < 0.5 else 'NOT met'}"
    )
    print(
        f"  of which bare sink -> first GitHub write (decide, inspect, reserve), p50: "
        f"{p50(first_write):.3f} s; the rest is the GitHub writes (tree, commit, ref)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
