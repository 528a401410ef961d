"""A controllable exporter and a bare webhook sink for tests against the real Prometheus.

    with Exporter() as exporter:
        exporter.traffic.set("api", "production", rps=100, error_ratio=0.5)
        prom = Prometheus(tmp_path, targets=[exporter.address], rule_files=SHIPPED_RULES).start()
        try:
            prom.wait_for('slo:error_budget_consumed:ratio{service="api"}')
        finally:
            prom.stop()

(`Prometheus` and `SHIPPED_RULES` are in tests.procs.) Everything binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.procs import Answer, LoopbackServer, MetricsServer

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


# -- the exporter --------------------------------------------------------------------------


@dataclass
class _Series:
    rps: float
    error_ratio: float
    latency_seconds: float
    ok: float = 0.0
    errors: float = 0.0
    since: float = field(default_factory=time.monotonic)

    def advance(self, now: float) -> None:
        dt = max(0.0, now - self.since)
        self.ok += self.rps * dt * (1 - self.error_ratio)
        self.errors += self.rps * dt * self.error_ratio
        self.since = now


class Traffic:
    """Counters that grow at a set rate and error ratio, so every rate() window sees it exactly.

    `set` first accrues the old rate up to now, so a change applies from that moment on.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()

    def set(
        self,
        service: str,
        namespace: str = "production",
        *,
        rps: float = 100.0,
        error_ratio: float = 0.0,
        latency_seconds: float = 0.05,
    ) -> None:
        now = time.monotonic()
        with self._lock:
            series = self._series.get((service, namespace))
            if series is None:
                self._series[(service, namespace)] = _Series(rps, error_ratio, latency_seconds)
                return
            series.advance(now)
            series.rps, series.error_ratio = rps, error_ratio
            series.latency_seconds = latency_seconds

    def remove(self, service: str, namespace: str = "production") -> None:
        with self._lock:
            self._series.pop((service, namespace), None)

    def exposition(self) -> str:
        """`http_requests_total` (code 200 and 500) and `http_request_duration_seconds`."""
        now = time.monotonic()
        lines = [
            "# HELP http_requests_total Requests served.",
            "# TYPE http_requests_total counter",
        ]
        histogram = [
            "# HELP http_request_duration_seconds Request latency.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        with self._lock:
            for (service, namespace), s in sorted(self._series.items()):
                s.advance(now)
                base = f'service="{service}",namespace="{namespace}"'
                lines.append(f'http_requests_total{{{base},code="200"}} {s.ok!r}')
                lines.append(f'http_requests_total{{{base},code="500"}} {s.errors!r}')
                total = s.ok + s.errors
                for le in LATENCY_BUCKETS:
                    count = total if s.latency_seconds <= le else 0.0
                    histogram.append(
                        f'http_request_duration_seconds_bucket{{{base},le="{le}"}} {count!r}'
                    )
                histogram.append(
                    f'http_request_duration_seconds_bucket{{{base},le="+Inf"}} {total!r}'
                )
                histogram.append(
                    f"http_request_duration_seconds_sum{{{base}}} {total * s.latency_seconds!r}"
                )
                histogram.append(f"http_request_duration_seconds_count{{{base}}} {total!r}")
        return "\n".join(lines + histogram) + "\n"


class Exporter(MetricsServer):
    """Serves `Traffic` on http://127.0.0.1:PORT/metrics for Prometheus to scrape."""

    def __init__(self) -> None:
        super().__init__()
        self.traffic = Traffic()

    def exposition(self) -> str:
        return self.traffic.exposition()


class WebhookSink(LoopbackServer):
    """Keeps every JSON body POSTed to it (a bare Alertmanager webhook receiver)."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.base_url

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if method != "POST":
            return 501, b"", {}
        with self.lock:
            self.received.append(json.loads(body or b"null"))
        return 200, b"", {}

    def wait_for(self, found: Callable[[list[Any]], Any], timeout: float = 30) -> Any:
        """Poll the received bodies until `found(bodies)` is truthy; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                result = found(list(self.received))
            if result:
                return result
            time.sleep(0.1)
        raise TimeoutError(f"webhook sink: nothing matching in {timeout}s: {self.received!r}")
