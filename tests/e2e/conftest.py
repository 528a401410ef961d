"""Fixtures for the end-to-end chain: one monitoring stack per session, one chain per scenario.

Session: the exporter, the router, Alertmanager's own Slack sink, the real Alertmanager (the
shipped routing) and the real Prometheus (the shipped rules). Per scenario (`make_chain`): a
service name of its own, a real bare git repository behind the fake GitHub, a fake Argo CD
application, Slack and PagerDuty sinks, and the receiver under gunicorn (`rollback-receiver
serve`) on the machine's Redis with a private db number and a unique key prefix.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from tests.e2e.exporter import Exporter
from tests.e2e.stack import (
    Arrival,
    BareSink,
    ChainPrometheus,
    Router,
    shipped_alertmanager_config,
    wait_until,
)
from tests.fakes import BareRepo
from tests.fakes.argocd import FakeApp, FakeArgoCD
from tests.fakes.github_api import FakeGitHub
from tests.fakes_notify import PagerDutySink, SlackSink
from tests.procs import ALERTMANAGER_BINARY, PROMETHEUS_BINARY, Alertmanager
from tests.redis_dbs import redis_url
from tests.serving import Served

E2E_REDIS_URL = redis_url("E2E_REDIS_URL", "redis://127.0.0.1:6379/11")
WEBHOOK_TOKEN = "e2e-webhook-token-s3cr3t"
ADMIN_TOKEN = "e2e-admin-token-s3cr3t"
GITHUB_TOKEN = "ghp_e2eFakeToken0123456789"
ARGOCD_PASSWORD = "argo-e2e-pass"
PAGERDUTY_KEY = "e2e0pagerduty0routing0key0000032"
TRIGGER = "TriggerEmergencyRollback"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this package is an end-to-end test."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Stack:
    """The shared monitoring chain."""

    exporter: Exporter
    router: Router
    am_slack: BareSink
    alertmanager: Alertmanager
    prometheus: ChainPrometheus
    tmp: Path


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for binary in (PROMETHEUS_BINARY, ALERTMANAGER_BINARY):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: run `make tools`")
    tmp = tmp_path_factory.mktemp("e2e")
    exporter = Exporter().start()
    router = Router().start()
    am_slack = BareSink().start()
    token_file = tmp / "webhook-token"
    token_file.write_text(WEBHOOK_TOKEN + "\n", encoding="utf-8")
    slack_url_file = tmp / "slack-url"
    slack_url_file.write_text(am_slack.base_url + "/services/T0/B0/am\n", encoding="utf-8")
    started: list[Any] = [exporter, router, am_slack]
    try:
        alertmanager = Alertmanager(
            shipped_alertmanager_config(router.url, token_file, slack_url_file)
        ).start()
        started.append(alertmanager)
        prometheus = ChainPrometheus(exporter.address, [f"127.0.0.1:{alertmanager.port}"]).start()
        started.append(prometheus)
        yield Stack(exporter, router, am_slack, alertmanager, prometheus, tmp)
    finally:
        for part in reversed(started):
            part.stop()


@dataclass
class Chain:
    """One scenario's service, its fakes, its sinks and its receiver(s)."""

    stack: Stack
    service: str
    repo: BareRepo
    github: FakeGitHub
    argocd: FakeArgoCD
    app: FakeApp
    slack: SlackSink
    pagerduty: PagerDutySink
    good: str
    bad: str
    env: dict[str, str]
    tmp: Path
    receivers: list[Served] = field(default_factory=list)
    breached_at: float = 0.0

    # -- receivers -------------------------------------------------------------------------

    def serve(self, workers: int = 2, **overrides: str) -> Served:
        """Start one more receiver process on this chain's environment (plus overrides)."""
        served = Served({**self.env, **overrides}, workers=workers, tmp=self.tmp)
        self.receivers.append(served)
        self.stack.prometheus.scrape_receiver(served.url.removeprefix("http://"))
        return served

    def route(self, *receivers: Served) -> None:
        """Alertmanager's deliveries for this service go to these receivers."""
        self.stack.router.register(self.service, *(r.url for r in receivers))

    @property
    def receiver(self) -> Served:
        return self.receivers[0]

    def api(
        self, method: str, path: str, receiver: Served | None = None, **kwargs: Any
    ) -> requests.Response:
        base = (receiver or self.receiver).url
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return requests.request(method, base + path, headers=headers, timeout=10, **kwargs)

    def cli(self, *args: str, receiver: Served | None = None) -> subprocess.CompletedProcess[str]:
        """Run `rollback-receiver ARGS` as an operator would, against a receiver."""
        env = {
            **os.environ,
            "RECEIVER_URL": (receiver or self.receiver).url,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "ALERTMANAGER_URL": self.stack.alertmanager.url,
            "USER": "e2e-operator",
        }
        binary = str(Path(sys.executable).parent / "rollback-receiver")
        return subprocess.run(
            [binary, *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )

    # -- the breach and what follows -------------------------------------------------------

    def breach(self, error_fraction: float = 0.5) -> float:
        self.breached_at = self.stack.exporter.breach(self.service, error_fraction)
        return self.breached_at

    def deliveries(self) -> list[Arrival]:
        """Trigger deliveries Alertmanager made for this service (through the router)."""
        return self.stack.router.for_service(self.service, TRIGGER)

    def wait_deliveries(
        self, count: int = 1, timeout: float = 40.0, status: int | None = None
    ) -> list[Arrival]:
        """Wait until `count` trigger deliveries (with `status`, when given) arrived."""

        def enough() -> list[Arrival] | None:
            found = [d for d in self.deliveries() if status is None or status in d.statuses]
            return found if len(found) >= count else None

        return wait_until(
            f"{count} {TRIGGER} deliveries for {self.service}",
            enough,
            timeout,
            detail=self.diagnostics,
        )

    def first_answer(self, timeout: float = 40.0) -> dict[str, Any]:
        """The receiver's answer for the trigger alert of the first delivered trigger."""
        delivery = self.wait_deliveries(1, timeout, status=200)[0]
        return trigger_answer(delivery, 0)

    def record(self, rollback_id: str, receiver: Served | None = None) -> dict[str, Any]:
        response = self.api("GET", f"/api/v1/rollbacks/{rollback_id}", receiver)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def history(self, receiver: Served | None = None) -> list[dict[str, Any]]:
        response = self.api("GET", "/api/v1/rollbacks", receiver, params={"service": self.service})
        assert response.status_code == 200, response.text
        return list(response.json()["rollbacks"])

    def wait_state(
        self,
        rollback_id: str,
        states: tuple[str, ...],
        timeout: float = 30.0,
        receiver: Served | None = None,
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            record = self.record(rollback_id, receiver)
            return record if record["state"] in states else None

        return wait_until(
            f"rollback {rollback_id} to become {'/'.join(states)}",
            reached,
            timeout,
            interval=0.2,
            detail=lambda: f"record: {self.record(rollback_id, receiver)}\n" + self.diagnostics(),
        )

    def new_commits(self) -> list[str]:
        """Commits on main after the bad deploy (the receiver's reverts), oldest first."""
        out = self.repo.git("rev-list", "--reverse", f"{self.bad}..refs/heads/main")
        return [line for line in out.splitlines() if line]

    def wait_firing(self, alertname: str, timeout: float = 30.0) -> None:
        wait_until(
            f"{alertname} firing in Prometheus for {self.service}",
            lambda: self.stack.prometheus.firing(alertname, service=self.service),
            timeout,
            interval=0.25,
            detail=self.diagnostics,
        )

    def diagnostics(self) -> str:
        """What to print when a wait times out: deliveries, commits, receiver log tail."""
        lines = [
            f"deliveries: {[(d.statuses, d.answers) for d in self.deliveries()][-3:]}",
            f"new commits: {self.new_commits()}",
        ]
        try:
            lines.append(
                "alerts: "
                + str(
                    [
                        (r["metric"].get("alertname"), r["metric"].get("alertstate"))
                        for r in self.stack.prometheus.query(f'ALERTS{{service="{self.service}"}}')
                    ]
                )
            )
        except requests.RequestException as exc:
            lines.append(f"prometheus: {exc}")
        for served in self.receivers:
            lines.append(f"receiver {served.url} log tail:\n{served.logs()[-1500:]}")
        return "\n".join(lines)


def trigger_answer(delivery: Arrival, index: int) -> dict[str, Any]:
    """The answer of receiver `index` for the trigger alert in a delivery."""
    answer = delivery.answers[index]
    assert isinstance(answer, dict) and "alerts" in answer, f"bad answer: {answer}"
    found = [a for a in answer["alerts"] if a["alertname"] == TRIGGER]
    assert found, f"no {TRIGGER} in the answer: {answer}"
    return dict(found[0])


def _seed_repo(repo: BareRepo, service: str) -> tuple[str, str]:
    """A GitOps repository whose last change to the service's path is a bad deploy."""
    path = f"k8s/{service}/deployment.yaml"
    now = time.time()
    repo.commit_files({"README.md": "gitops\n"}, "init", when=now - 7200)
    good = repo.commit_files(
        {path: f"image: {service}:1.0.0\n"}, f"deploy {service} 1.0.0", when=now - 3600
    )
    bad = repo.commit_files(
        {path: f"image: {service}:1.1.0\n"}, f"deploy {service} 1.1.0", when=now - 120
    )
    return good, bad


class ChainFactory:
    """Builds scenario chains and stops everything they started."""

    def __init__(self, stack: Stack, tmp: Path) -> None:
        self.stack = stack
        self.tmp = tmp
        self.chains: list[Chain] = []
        self.cleanup: list[Any] = []
        self.prefixes: list[str] = []

    def make(self, name: str, **app_knobs: Any) -> Chain:
        """A new service with its repo, fakes, sinks and environment (no receiver yet)."""
        stack, tmp_path = self.stack, self.tmp
        service = f"{name}-{secrets.token_hex(2)}"
        repo = BareRepo.create(tmp_path / f"{service}.git")
        good, bad = _seed_repo(repo, service)
        github = FakeGitHub(repo, "acme/gitops", GITHUB_TOKEN)
        github.start()
        self.cleanup.append(github)
        argocd = FakeArgoCD(password=ARGOCD_PASSWORD)
        knobs = {"automated": {"prune": True, "selfHeal": True}, "ticks_to_finish": 0, **app_knobs}
        app = argocd.add(
            FakeApp(
                name=f"{service}-prod",
                revisions=[good, bad],
                resolve=lambda: repo.head("main"),
                path=f"k8s/{service}",
                **knobs,
            )
        )
        argocd.start()
        self.cleanup.append(argocd)
        slack = SlackSink().start()
        pagerduty = PagerDutySink().start()
        self.cleanup += [slack, pagerduty]
        prefix = f"e2e-{secrets.token_hex(4)}:"
        self.prefixes.append(prefix)
        env = {
            "SERVICE_NAME": service,
            "NAMESPACE": "production",
            "REDIS_URL": E2E_REDIS_URL,
            "REDIS_PREFIX": prefix,
            "BLACKOUT_WINDOWS": "none",
            "GITOPS_PROVIDER": "github",
            "GITOPS_REPO": "acme/gitops",
            "GITOPS_PATH": f"k8s/{service}",
            "GITOPS_BRANCH": "main",
            "GITOPS_TOKEN": GITHUB_TOKEN,
            "GITHUB_API_URL": github.base_url,
            "ARGOCD_SERVER": argocd.address,
            "ARGOCD_PLAINTEXT": "true",
            "ARGOCD_APP_NAME": f"{service}-prod",
            "ARGOCD_PASSWORD": ARGOCD_PASSWORD,
            "ROLLBACK_MODE": "both",
            "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "SLACK_WEBHOOK": slack.url,
            "PAGERDUTY_KEY": PAGERDUTY_KEY,
            "PAGERDUTY_URL": pagerduty.url,
            "PROMETHEUS_URL": stack.prometheus.url,
            "ALERTMANAGER_URL": stack.alertmanager.url,
            "STABILIZATION_SECONDS": "0",
            "VALIDATION_TIMEOUT_SECONDS": "20",
            "LOCK_LEASE_SECONDS": "10",
            "REAPER_INTERVAL_SECONDS": "1",
            "COOLDOWN_MINUTES": "60",
            "LOG_FILE": str(tmp_path / f"{service}.jsonl"),
        }
        stack.exporter.add(service)
        chain = Chain(
            stack, service, repo, github, argocd, app, slack, pagerduty, good, bad, env, tmp_path
        )
        self.chains.append(chain)
        return chain

    def close(self) -> None:
        stack = self.stack
        for chain in self.chains:
            stack.router.unregister(chain.service)
            for served in chain.receivers:
                stack.prometheus.scrape_receiver(served.url.removeprefix("http://"), scrape=False)
                served.stop()
            stack.exporter.heal(chain.service)
        for part in reversed(self.cleanup):
            part.stop()
        client = redis_lib.Redis.from_url(E2E_REDIS_URL)
        try:
            for prefix in self.prefixes:
                keys = list(client.scan_iter(match=f"{prefix}*", count=500))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def make_chain(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., Chain]]:
    """Build a scenario's chain; everything it started is stopped afterwards."""
    factory = ChainFactory(stack, tmp_path)
    try:
        yield factory.make
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_chains(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainFactory]:
    """Chains shared by the tests of one module (a scenario observed by several tests)."""
    factory = ChainFactory(stack, tmp_path_factory.mktemp("chains"))
    try:
        yield factory
    finally:
        factory.close()
