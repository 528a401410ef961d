"""The GitHub client reads the proxy and CA-bundle variables once per connection, not per call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests.sessions

from receiver.act import github_client
from receiver.act.github_client import _HTTPSConnection, shared_github
from receiver.act.gitops_common import GitOpsOptions
from receiver.act.gitops_github import HISTORIES, GitHubRevert
from receiver.act.shared_reads import delivery_scope
from receiver.config import Secret
from tests.fakes.github_api import running_github
from tests.gitops_support import gitops_job, seed_folders

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)
REF = "/repos/acme/gitops/git/ref/heads/main"


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    HISTORIES.clear()
    yield
    HISTORIES.clear()


@pytest.fixture
def environment_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL requests looked up proxy variables for (requests.sessions' own name)."""
    looked_up: list[str] = []
    real = requests.sessions.get_environ_proxies

    def counting(url: str, no_proxy: Any = None) -> dict[str, str]:
        looked_up.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    return looked_up


def forget_client(api_url: str, token: str) -> None:
    with github_client._clients_lock:
        for key in [k for k in github_client._clients if k[:2] == (api_url, token)]:
            del github_client._clients[key]


def test_the_environment_is_read_once_per_connection_not_per_request(
    tmp_path: Path, environment_reads: list[str]
) -> None:
    repo = seed_folders(tmp_path / "g.git", ["k8s/svc0"])
    token = "ghp_environment_once"
    with running_github(repo, "acme/gitops", token) as github:
        forget_client(github.base_url, token)
        options = GitOpsOptions("acme/gitops", "k8s/svc0", "main", Secret("GITOPS_TOKEN", token))
        action = GitHubRevert(options, api_url=github.base_url)
        for _ in range(4):  # four deliveries: four head reads, one history listing
            with delivery_scope():
                action.inspect(gitops_job("acme/gitops"))
        made = len(github.faults.calls)
        forget_client(github.base_url, token)
    assert made == 5
    assert len(environment_reads) == 1, environment_reads  # when the connection was made


@contextmanager
def recording_proxy() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP proxy that answers a branch ref itself and records each request target."""
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = json.dumps({"ref": "refs/heads/main", "object": {"sha": "a" * 40}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_proxy_in_the_environment_still_carries_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api_url, token = "http://127.0.0.1:9", "ghp_through_the_proxy"  # port 9: nobody answers
    with recording_proxy() as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        forget_client(api_url, token)
        client = shared_github(api_url, token, 5)
        try:
            answers = [client.requester.requestJsonAndCheck("GET", REF)[1] for _ in range(3)]
        finally:
            forget_client(api_url, token)
    assert [a["object"]["sha"] for a in answers] == ["a" * 40] * 3
    assert seen == [api_url + REF] * 3  # absolute targets: each request went through the proxy


def test_no_proxy_and_the_ca_bundle_are_taken_when_the_connection_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate-ca.pem")
    through = _HTTPSConnection("api.github.com", 443, verify=True)
    monkeypatch.setenv("NO_PROXY", "github.example.com")
    bypassed = _HTTPSConnection("github.example.com", 443, verify=True)
    pinned = _HTTPSConnection("api.github.com", 443, verify="/etc/ssl/pinned.pem")
    assert through.session.proxies.get("https") == "http://proxy.internal:3128"
    assert "https" not in bypassed.session.proxies
    assert through.verify == bypassed.verify == "/etc/ssl/corporate-ca.pem"
    assert pinned.verify == "/etc/ssl/pinned.pem"  # a verify given explicitly wins, as in requests
    assert not (through.session.trust_env or bypassed.session.trust_env or pinned.session.trust_env)
