"""The fake GitHub served from its own process, so its work does not share the caller's GIL.

    python -m tests.fakes.github_process --repo PATH --port PORT [--full-name o/r] [--token T]

serves `FakeGitHub` (tests/fakes/github_api.py) unchanged on 127.0.0.1:PORT, plus two
endpoints of the fake itself, outside GitHub's paths and never recorded as calls:
`GET /_fake/ready` (200 once serving) and `GET /_fake/calls` (the calls received so far, as
`[[method, path], ...]` in arrival order). GitHub keeps HTTP/1.1 connections alive, and
werkzeug's development server closes every one, so the fake is served by gunicorn's threaded
worker here (one worker: the fake's state is in its memory). SIGTERM stops it. `GitHubProcess`
starts it on a free port, reads the calls and stops it by PID (tests.procs.Process).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests
from gunicorn.app.base import BaseApplication

from tests.fakes import BareRepo
from tests.fakes.github_api import FakeGitHub
from tests.procs import Process

ROOT = Path(__file__).resolve().parents[2]
CONTROL = "/_fake/"
THREADS = 16  # more than the receiver keeps connections to it (its pool: 10)


def control_app(fake: FakeGitHub) -> Callable[..., Iterable[bytes]]:
    """The fake's WSGI app, with /_fake/ready and /_fake/calls in front of it."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CONTROL):
            return fake.app(environ, start_response)  # type: ignore[no-any-return]
        if path == CONTROL + "calls":
            calls = list(fake.faults.calls)  # one copy (atomic); requests keep appending
            body = json.dumps([[c.method, c.path] for c in calls]).encode()
        elif path == CONTROL + "ready":
            body = b"ready"
        else:
            start_response("404 NOT FOUND", [("Content-Type", "text/plain")])
            return [b"unknown control endpoint"]
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repo", required=True, help="the bare repository to serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--full-name", default="acme/gitops")
    parser.add_argument("--token", default="ghp_fake")
    args = parser.parse_args(argv)
    fake = FakeGitHub(BareRepo(args.repo), args.full_name, args.token)
    _Server(control_app(fake), f"127.0.0.1:{args.port}").run()


class _Server(BaseApplication):  # type: ignore[misc]
    """gunicorn serving one WSGI app: one gthread worker, keep-alive, a quick stop."""

    def __init__(self, app: Callable[..., Iterable[bytes]], bind: str) -> None:
        self.app = app
        self.bind = bind
        super().__init__()

    def load_config(self) -> None:
        settings = {
            "bind": self.bind,
            "workers": 1,
            "worker_class": "gthread",
            "threads": THREADS,
            "keepalive": 30,
            "timeout": 120,
            "graceful_timeout": 3,
            "accesslog": None,
            "loglevel": "warning",
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Iterable[bytes]]:
        return self.app


class GitHubProcess(Process):
    """The fake GitHub in a child process on a free loopback port, stopped by PID."""

    name = "fake-github"
    ready_path = CONTROL + "ready"

    def __init__(self, repo: BareRepo, full_name: str, token: str) -> None:
        super().__init__()
        self.repo, self.full_name, self.token = repo, full_name, token

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tests.fakes.github_process",
            f"--repo={self.repo.path}",
            f"--port={self.port}",
            f"--full-name={self.full_name}",
            f"--token={self.token}",
        ]

    def _spawn(self, args: list[str]) -> None:
        self._log = self.log_path.open("ab")
        # cwd: `python -m tests.fakes...` finds the package from the checkout's root
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request the fake received, in arrival order."""
        with requests.get(self.url + CONTROL + "calls", timeout=10) as answer:
            answer.raise_for_status()
            return [(method, path) for method, path in answer.json()]


if __name__ == "__main__":
    main()
