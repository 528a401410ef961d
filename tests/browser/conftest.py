"""Headless Chromium (Debian chromium + chromium-driver, via selenium) against a live receiver.

One receiver per module under gunicorn (`rollback-receiver serve`), REQUIRE_APPROVAL=true, GitOps
through the fake GitHub over a real bare repository, silences in a real Alertmanager, and the
machine's Redis on the private E2E db with a unique key prefix.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from tests.fakes import BareRepo
from tests.fakes.github_api import FakeGitHub
from tests.procs import ALERTMANAGER_BINARY, Alertmanager
from tests.redis_dbs import redis_url
from tests.serving import Served

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
E2E_REDIS_URL = redis_url("E2E_REDIS_URL", "redis://127.0.0.1:6379/11")
ADMIN_TOKEN = "browser-admin-token-s3cr3t"
WEBHOOK_TOKEN = "browser-webhook-token-s3cr3t"
GITHUB_TOKEN = "ghp_browserFakeToken0123456789"
SERVICE = "shop"
# Screenshots go to a scratch folder on every run (a test run must not dirty the tree);
# `make screenshots` sets CONSOLE_SCREENSHOTS=docs/images to refresh the ones docs/ shows.
IMAGES = Path(
    os.environ.get("CONSOLE_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "rollback-receiver-screenshots"
).resolve()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this package drives a real browser."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@dataclass
class Console:
    """The live receiver, its Alertmanager and the browser driving it."""

    served: Served
    alertmanager: Alertmanager
    driver: Any

    @property
    def url(self) -> str:
        return self.served.url

    def post_trigger(self, fingerprint: str) -> dict[str, Any]:
        """An emergency trigger delivery as Alertmanager posts it; the receiver's answer."""
        from tests.support import alert, payload

        body = payload(alert(SERVICE, fingerprint=fingerprint))
        answer = self.served.post("/webhook", body, Authorization=f"Bearer {WEBHOOK_TOKEN}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["alerts"][0])

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def screenshot(self, name: str) -> None:
        IMAGES.mkdir(parents=True, exist_ok=True)
        path = IMAGES / f"console-{name}.png"
        self.driver.save_screenshot(str(path))
        assert path.stat().st_size > 1000, f"empty screenshot {path}"

    def requested_urls(self) -> list[str]:
        """Every URL the browser asked for so far (Chrome's performance log)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(str(message["params"]["request"]["url"]))
        return urls

    def console_errors(self) -> list[str]:
        return [
            str(entry["message"])
            for entry in self.driver.get_log("browser")
            if entry.get("level") == "SEVERE"
        ]


def _seed(repo: BareRepo) -> None:
    now = time.time()
    path = f"k8s/{SERVICE}/deployment.yaml"
    repo.commit_files({"README.md": "gitops\n"}, "init", when=now - 7200)
    repo.commit_files({path: "image: shop:1.0.0\n"}, "deploy shop 1.0.0", when=now - 3600)
    repo.commit_files({path: "image: shop:1.1.0\n"}, "deploy shop 1.1.0", when=now - 120)


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    return driver


@pytest.fixture(scope="module")
def live_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    for binary in (CHROMIUM, CHROMEDRIVER, ALERTMANAGER_BINARY):
        if not shutil.which(binary):
            pytest.fail(f"{binary} is missing: run `make tools` (scripts/ensure-tools.sh)")
    tmp = tmp_path_factory.mktemp("browser")
    repo = BareRepo.create(tmp / "gitops.git")
    _seed(repo)
    github = FakeGitHub(repo, "acme/gitops", GITHUB_TOKEN)
    github.start()
    alertmanager = Alertmanager().start()
    prefix = f"browser-{secrets.token_hex(4)}:"
    env = {
        "SERVICE_NAME": SERVICE,
        "NAMESPACE": "production",
        "REDIS_URL": E2E_REDIS_URL,
        "REDIS_PREFIX": prefix,
        "BLACKOUT_WINDOWS": "Sat,Sun 00:00-06:00 UTC",
        "GITOPS_PROVIDER": "github",
        "GITOPS_REPO": "acme/gitops",
        "GITOPS_PATH": f"k8s/{SERVICE}",
        "GITOPS_TOKEN": GITHUB_TOKEN,
        "GITHUB_API_URL": github.base_url,
        "ROLLBACK_MODE": "gitops",
        "REQUIRE_APPROVAL": "true",
        "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ALERTMANAGER_URL": alertmanager.url,
        "PROMETHEUS_URL": "http://127.0.0.1:9",
        "STABILIZATION_SECONDS": "0",
        "COOLDOWN_MINUTES": "60",
        "REAPER_INTERVAL_SECONDS": "1",
        "LOG_FILE": str(tmp / "receiver.jsonl"),
    }
    served = None
    driver = None
    try:
        served = Served(env, workers=2, tmp=tmp)
        driver = _driver()
        yield Console(served, alertmanager, driver)
    finally:
        if driver is not None:
            driver.quit()
        if served is not None:
            served.stop()
        alertmanager.stop()
        github.stop()
        client = redis_lib.Redis.from_url(E2E_REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
