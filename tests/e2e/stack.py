"""The monitoring chain for end-to-end runs: real Prometheus and Alertmanager, a router, sinks.

- `ChainPrometheus`: the shared `tests.procs.Prometheus` (1s scrape and evaluation) loaded with
  THE SHIPPED alerts/*.yml; scrapes the exporter (job `app`) and the receivers listed in a
  file_sd file (job `rollback-receiver`); sends alerts to the Alertmanager.
- `shipped_alertmanager_config`: THE SHIPPED deploy/alertmanager/alertmanager.yml, of which only
  the webhook URL, the credentials/URL file paths and the timings are rewritten, for the shared
  `tests.procs.Alertmanager` (Alertmanager 0.25).
- `Router`: the webhook URL Alertmanager is given. It forwards each delivery, byte for byte
  and with its Authorization header, to the receivers registered for the delivery's `service`
  (several = the same delivery to several receiver processes) and answers with their worst
  status, so a 503 makes Alertmanager retry. One Prometheus and one Alertmanager thereby
  serve scenarios that each run their own receiver. Unclaimed deliveries are answered 200.
- `BareSink`: a trivial HTTP server that records arrival times (Alertmanager's Slack and the
  benchmark's bare webhook).
- `RedisServer`: a throwaway redis-server on a free port, stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from tests.procs import (
    SHIPPED_RULES,
    Answer,
    LoopbackServer,
    Process,
    Prometheus,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
REDIS_BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"
SHIPPED_ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

T = TypeVar("T")


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.1,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


# -- Alertmanager ------------------------------------------------------------------------------


def shipped_alertmanager_config(
    webhook_url: str,
    token_file: Path,
    slack_url_file: Path,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "3s",
) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with only URLs, secret paths and timings rewritten.

    Routes keep their own matchers, receivers, grouping and inhibitions; a `group_wait` of 0s
    (the emergency route) stays 0s, every other timing becomes the short one given.
    """
    config: dict[str, Any] = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text(encoding="utf-8"))
    short = {
        "group_wait": group_wait,
        "group_interval": group_interval,
        "repeat_interval": repeat_interval,
    }

    def rewrite(route: dict[str, Any]) -> None:
        for key, value in short.items():
            if key in route and not (key == "group_wait" and route[key] in ("0s", 0)):
                route[key] = value
        for child in route.get("routes", []) or []:
            rewrite(child)

    rewrite(config["route"])
    webhooks = slacks = 0
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []) or []:
            hook["url"] = webhook_url
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
            webhooks += 1
        for slack in receiver.get("slack_configs", []) or []:
            slack["api_url_file"] = str(slack_url_file)
            slacks += 1
    if not webhooks or not slacks:
        raise AssertionError("the shipped Alertmanager config lost its webhook or Slack receiver")
    return config


# -- Prometheus --------------------------------------------------------------------------------


class ChainPrometheus(Prometheus):
    """Prometheus with the shipped rules that also scrapes the receivers in a file_sd file."""

    def __init__(
        self, exporter: str, alertmanagers: list[str], rule_files: list[Path] | None = None
    ) -> None:
        super().__init__(
            targets=[exporter],
            rule_files=rule_files or SHIPPED_RULES,
            alertmanagers=alertmanagers,
            scrape_timeout="900ms",
        )
        self.receivers_file = self.dir / "receivers.json"
        self.receivers_file.write_text("[]", encoding="utf-8")
        self._targets: set[str] = set()
        self._targets_lock = threading.Lock()
        self.config["scrape_configs"].append(
            {
                "job_name": "rollback-receiver",
                "file_sd_configs": [
                    {"files": [str(self.receivers_file)], "refresh_interval": "1s"}
                ],
            }
        )
        self.write_config()

    def scrape_receiver(self, address: str, scrape: bool = True) -> None:
        """Add (or remove) a receiver's host:port to the `rollback-receiver` job (file_sd)."""
        with self._targets_lock:
            if scrape:
                self._targets.add(address)
            else:
                self._targets.discard(address)
            body = json.dumps([{"targets": sorted(self._targets)}] if self._targets else [])
            tmp = self.receivers_file.with_suffix(".tmp")
            tmp.write_text(body, encoding="utf-8")
            os.replace(tmp, self.receivers_file)

    def firing(self, alertname: str, **labels: str) -> bool:
        """True while ALERTS{alertname, labels} is firing."""
        selector = ",".join(
            [
                f'alertname="{alertname}"',
                'alertstate="firing"',
                *(f'{k}="{v}"' for k, v in labels.items()),
            ]
        )
        return bool(self.query(f"ALERTS{{{selector}}}"))


# -- sinks and the router ----------------------------------------------------------------------


@dataclass
class Arrival:
    """One POST a sink or the router received."""

    at: float  # time.time()
    path: str
    body: Any
    statuses: list[int] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)

    @property
    def service(self) -> str:
        return _service_of(self.body)

    @property
    def alertnames(self) -> set[str]:
        alerts = self.body.get("alerts", []) if isinstance(self.body, dict) else []
        return {str(a.get("labels", {}).get("alertname")) for a in alerts}


def _service_of(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("groupLabels", "commonLabels"):
        labels = body.get(key) or {}
        service = labels.get("service") or labels.get("sloth_service")  # Sloth: no `service`
        if service:
            return str(service)
    return ""


class _Recorder(LoopbackServer):
    """A loopback server (HTTP/1.1) whose POSTs go to `handle(path, headers, body)`."""

    protocol_version = "HTTP/1.1"

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()

    def handle(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, bytes]:  # pragma: no cover - overridden
        raise NotImplementedError

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if method != "POST":
            return 501, b"", {}
        status, payload = self.handle(path, headers, body)
        return status, payload, {"Content-Type": "application/json"}

    def for_service(self, service: str, alertname: str | None = None) -> list[Arrival]:
        with self.lock:
            return [
                a
                for a in self.arrivals
                if a.service == service and (alertname is None or alertname in a.alertnames)
            ]


class BareSink(_Recorder):
    """Answers every POST 200 and records it with its arrival time."""

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self.lock:
            self.arrivals.append(Arrival(time.time(), path, body, [200]))
        return 200, b'{"ok": true}'

    def texts(self) -> str:
        """Every received body as one string (to search Slack messages)."""
        with self.lock:
            return "\n".join(json.dumps(a.body) for a in self.arrivals)


class Router(_Recorder):
    """Forwards Alertmanager deliveries to the receivers registered for their service."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, list[str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="router")

    @property
    def url(self) -> str:
        return self.base_url + "/webhook"

    def register(self, service: str, *receiver_urls: str) -> None:
        with self.lock:
            self.routes[service] = list(receiver_urls)

    def unregister(self, service: str) -> None:
        with self.lock:
            self.routes.pop(service, None)

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes]:
        at = time.time()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        service = _service_of(body)
        with self.lock:
            targets = list(self.routes.get(service, []))
        forward = {"Content-Type": "application/json"}
        if "Authorization" in headers:
            forward["Authorization"] = headers["Authorization"]

        def post(url: str) -> tuple[int, Any]:
            try:
                with requests.post(
                    url + "/webhook", data=raw, headers=forward, timeout=15
                ) as response:
                    try:
                        return response.status_code, response.json()
                    except ValueError:
                        return response.status_code, response.text
            except requests.RequestException as exc:
                return 502, {"error": exc.__class__.__name__}

        results = list(self._pool.map(post, targets))
        arrival = Arrival(at, path, body, [s for s, _ in results], [a for _, a in results])
        with self.lock:
            self.arrivals.append(arrival)
        if not results:
            return 200, b'{"routed": 0}'
        status = max(s for s, _ in results)
        return status, json.dumps(results[0][1]).encode()

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=True)


# -- Redis -------------------------------------------------------------------------------------


class RedisServer(Process):
    """A throwaway redis-server on a free loopback port (never the machine's)."""

    name = "redis"

    def command(self) -> list[str]:
        return [
            REDIS_BINARY,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
        ]

    def start(self, port: int | None = None) -> RedisServer:
        """Start on `port` (a restart after `halt`) or a free one; wait for PONG."""
        self.port = port or free_port()
        self._spawn(self.command())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on {self.port}: {self.log_tail()}")

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def halt(self) -> None:
        """Stop this redis-server (by its PID) but keep its port number for a restart."""
        self.stop(cleanup=False)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
