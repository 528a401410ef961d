"""Loopback stand-ins for Slack and PagerDuty (the real Alertmanager runner is in tests.procs).

The sinks answer as the real services do (API-FACTS E.1, E.2): Slack's incoming webhook
answers 200 `ok`, 400 `invalid_payload`, 429 with Retry-After; PagerDuty's Events API v2
answers 202 with the dedup_key, 400 `Event object is invalid` with `errors`, 429. Each
records what it received, and can be told to answer with an error the next N times. Use
them as context managers (or start()/stop()); `url` is the endpoint to configure.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.procs import Answer, LoopbackServer


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


class _Sink(LoopbackServer):
    """A loopback HTTP server that records POSTs and answers them (scripted answers first)."""

    poll_interval = 0.02

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self._scripted: list[_Scripted] = []
        self._lock = threading.Lock()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if method != "POST":
            return 501, b"", {}
        return self._answer(path, headers, body)

    # -- scripting ------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        body: bytes | str = b"",
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
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

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
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

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
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
        self.fail_next(
            429,
            json.dumps(
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving "
                    "too quickly.  Please retry later.",
                }
            ),
            times,
            {"Content-Type": "application/json"},
        )

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
            errors.append(
                "'event_action' is invalid (must be one of trigger, acknowledge, resolve)"
            )
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
                    errors.append(
                        "'payload.severity' is invalid (must be one of critical, "
                        "error, warning, info)"
                    )
                if len(str(payload.get("summary") or "")) > 1024:
                    errors.append("'payload.summary' is too long (maximum is 1024 characters)")
        return errors

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        parsed = self._record(path, headers, body)
        plain = {"Content-Type": "application/json"}
        if path != "/v2/enqueue":
            return 404, b'{"status":"not found"}', plain
        scripted = self._take_scripted()
        if scripted is not None:
            return scripted.status, scripted.body, {**plain, **scripted.headers}
        if parsed is None:
            answer = {
                "status": "Unrecognized object",
                "message": "Event object format is unrecognized",
                "errors": ["JSON parse error"],
            }
            return 400, json.dumps(answer).encode(), plain
        errors = self.validate(parsed)
        if errors:
            answer = {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": errors,
            }
            return 400, json.dumps(answer).encode(), plain
        dedup_key = parsed.get("dedup_key") or uuid.uuid4().hex
        answer = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        return 202, json.dumps(answer).encode(), plain
