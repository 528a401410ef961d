"""Loopback stand-ins for Slack and PagerDuty, and a runner for the real Alertmanager binary.

The sinks answer as the real services do (API-FACTS E.1, E.2): Slack's incoming webhook
answers 200 `ok`, 400 `invalid_payload`, 429 with Retry-After; PagerDuty's Events API v2
answers 202 with the dedup_key, 400 `Event object is invalid` with `errors`, 429. Each
records what it received, and can be told to answer with an error the next N times. Use
them as context managers (or start()/stop()); `url` is the endpoint to configure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


@dataclass
class Received:
    """One request a sink received."""

    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None


@dataclass
class _Scripted:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class _Sink:
    """A threaded HTTP server on 127.0.0.1 (free port) that records POSTs."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._scripted: list[_Scripted] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> _Sink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, payload, headers = sink._answer(self.path, dict(self.headers), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "sink not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- scripting ------------------------------------------------------------------
    def fail_next(self, status: int, body: bytes | str = b"", times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` requests with this status and body."""
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._scripted.extend(_Scripted(status, raw, dict(headers or {})) for _ in range(times))

    def _take_scripted(self) -> _Scripted | None:
        with self._lock:
            return self._scripted.pop(0) if self._scripted else None

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> Any:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        with self._lock:
            self.received.append(Received(path, headers, body, parsed))
        return parsed

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait (bounded) until at least `count` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        with self._lock:
            return list(self.received)

    def _answer(self, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, bytes, dict[str, str]]:
        raise NotImplementedError


class SlackSink(_Sink):
    """Behaves like a Slack incoming webhook (POST /services/T…/B…/…)."""

    webhook_path = "/services/T0000TEST/B0000TEST/s3cr3tW3bh00kT0k3n"

    @property
    def url(self) -> str:
        return self.base_url + self.webhook_path

    def rate_limit_next(self, retry_after: int | str | None = 1, times: int = 1) -> None:
        """Answer the next requests 429, with a Retry-After header when given (like Slack)."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self.fail_next(429, b"", times, headers)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The JSON bodies Slack accepted or received, in order."""
        with self._lock:
            return [r.json for r in self.received if isinstance(r.json, dict)]

    def _answer(self, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, bytes, dict[str, str]]:
        parsed = self._record(path, headers, body)
        plain = {"Content-Type": "text/html"}
        if not path.startswith("/services/"):
            return 404, b"no_service", plain
        scripted = self._take_scripted()
        if scripted is not None:
            return scripted.status, scripted.body, {**plain, **scripted.headers}
        # Slack takes a message with text, blocks or (legacy) attachments: Alertmanager's own
        # Slack integration sends attachments only.
        if not isinstance(parsed, dict) or not (
            parsed.get("text") or parsed.get("blocks") or parsed.get("attachments")
        ):
            return 400, b"invalid_payload", plain
        return 200, b"ok", plain


PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")


class PagerDutySink(_Sink):
    """Behaves like PagerDuty's Events API v2 (POST /v2/enqueue)."""

    @property
    def url(self) -> str:
        return self.base_url + "/v2/enqueue"

    def rate_limit_next(self, times: int = 1) -> None:
        """Answer the next requests 429, as PagerDuty does over its rate limit."""
        self.fail_next(429, json.dumps({"status": "throttle event",
                                        "message": "Requests for this service are arriving "
                                                   "too quickly.  Please retry later."}),
                       times, {"Content-Type": "application/json"})

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON events received, in order."""
        with self._lock:
            return [r.json for r in self.received if isinstance(r.json, dict)]

    @staticmethod
    def validate(event: Any) -> list[str]:
        """The errors PagerDuty would list for this event (empty when valid)."""
        if not isinstance(event, dict):
            return ["JSON parse error"]
        errors = []
        key = event.get("routing_key")
        if not key:
            errors.append("'routing_key' is missing or blank")
        elif len(str(key)) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        action = event.get("event_action")
        if not action:
            errors.append("'event_action' is missing or blank")
        elif action not in PAGERDUTY_ACTIONS:
            errors.append("'event_action' is invalid (must be one of trigger, acknowledge, "
                          "resolve)")
        if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
            errors.append("'dedup_key' is missing or blank")
        if len(str(event.get("dedup_key") or "")) > 255:
            errors.append("'dedup_key' is too long (maximum is 255 characters)")
        if action == "trigger":
            payload = event.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is missing or blank")
            else:
                for name in ("summary", "source", "severity"):
                    if not payload.get(name):
                        errors.append(f"'payload.{name}' is missing or blank")
                if payload.get("severity") and payload["severity"] not in PAGERDUTY_SEVERITIES:
                    errors.append("'payload.severity' is invalid (must be one of critical, "
                                  "error, warning, info)")
                if len(str(payload.get("summary") or "")) > 1024:
                    errors.append("'payload.summary' is too long (maximum is 1024 characters)")
        return errors

    def _answer(self, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, bytes, dict[str, str]]:
        parsed = self._record(path, headers, body)
        plain = {"Content-Type": "application/json"}
        if path != "/v2/enqueue":
            return 404, b'{"status":"not found"}', plain
        scripted = self._take_scripted()
        if scripted is not None:
            return scripted.status, scripted.body, {**plain, **scripted.headers}
        if parsed is None:
            answer = {"status": "Unrecognized object", "message": "Event object format is "
                      "unrecognized", "errors": ["JSON parse error"]}
            return 400, json.dumps(answer).encode(), plain
        errors = self.validate(parsed)
        if errors:
            answer = {"status": "invalid event", "message": "Event object is invalid",
                      "errors": errors}
            return 400, json.dumps(answer).encode(), plain
        dedup_key = parsed.get("dedup_key") or uuid.uuid4().hex
        answer = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        return 202, json.dumps(answer).encode(), plain


# -- the real Alertmanager ------------------------------------------------------------------

ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"
_MINIMAL_CONFIG = "route:\n  receiver: default\nreceivers:\n  - name: default\n"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RealAlertmanager:
    """The machine's Alertmanager on a free loopback port, no clustering, temp storage."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="am-test-")
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> RealAlertmanager:
        config = os.path.join(self.dir, "alertmanager.yml")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(_MINIMAL_CONFIG)
        for _ in range(attempts):  # another run may take the port between probe and bind
            self.port = free_port()
            self._log = open(os.path.join(self.dir, "log"), "ab")
            self.process = subprocess.Popen(
                [ALERTMANAGER_BINARY, f"--config.file={config}",
                 f"--storage.path={os.path.join(self.dir, 'data')}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=self._log, stderr=subprocess.STDOUT,
            )
            if self._wait_ready(10.0):
                return self
            self.stop(cleanup=False)
        raise RuntimeError(f"Alertmanager did not start; see {self.dir}/log")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with requests.get(f"{self.url}/-/ready", timeout=0.5) as response:
                    if response.status_code == 200:
                        return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def stop(self, cleanup: bool = True) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if cleanup:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RealAlertmanager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
