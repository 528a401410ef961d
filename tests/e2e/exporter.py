"""A controllable exporter of the instrumentation the shipped rules read, on a loopback port.

Per service it exports `http_requests_total{service,namespace,code}` and the histogram
`http_request_duration_seconds{service,namespace}`, advancing them at each scrape by the
time elapsed since the last one: `rps` requests per second, of which `error_fraction` answer
500 (the rest 200), each taking `latency` seconds. The 500 series exists from the start at 0
(as with a client library that pre-creates its label sets), so a breach shows in `rate()` at
the first scrape after it. `breach()` records when the switch happened (monotonic and wall).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.procs import MetricsServer

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ServiceTraffic:
    """One service's counters and the knobs that drive them."""

    service: str
    namespace: str = "production"
    rps: float = 20.0
    error_fraction: float = 0.0
    latency: float = 0.02
    ok: float = 0.0
    errors: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))
    count: float = 0.0
    total_seconds: float = 0.0
    last: float = field(default_factory=time.monotonic)
    breached_at: float | None = None  # time.time() of the switch to errors

    def advance(self, now: float) -> None:
        """Count the requests served since the last advance."""
        served = self.rps * max(now - self.last, 0.0)
        self.last = now
        self.errors += served * self.error_fraction
        self.ok += served * (1.0 - self.error_fraction)
        self.count += served
        self.total_seconds += served * self.latency
        for index, bound in enumerate(BUCKETS):
            if self.latency <= bound:
                self.buckets[index] += served

    def lines(self) -> list[str]:
        labels = f'service="{self.service}",namespace="{self.namespace}"'
        out = [
            f'http_requests_total{{{labels},code="200"}} {self.ok!r}',
            f'http_requests_total{{{labels},code="500"}} {self.errors!r}',
        ]
        for bound, value in zip(BUCKETS, self.buckets, strict=True):
            out.append(f'http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {value!r}')
        out.append(f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {self.count!r}')
        out.append(f"http_request_duration_seconds_sum{{{labels}}} {self.total_seconds!r}")
        out.append(f"http_request_duration_seconds_count{{{labels}}} {self.count!r}")
        return out


class Exporter(MetricsServer):
    """Serves /metrics for the services it was told about; thread-safe knobs."""

    def __init__(self) -> None:
        super().__init__()
        self.services: dict[str, ServiceTraffic] = {}
        self._lock = threading.Lock()

    # -- knobs ----------------------------------------------------------------------------

    def add(self, service: str, namespace: str = "production", rps: float = 20.0) -> None:
        """Start exporting a healthy service."""
        with self._lock:
            self.services[service] = ServiceTraffic(service, namespace, rps)

    def breach(self, service: str, error_fraction: float = 0.5) -> float:
        """Switch a service to answering `error_fraction` 500s; the wall time of the switch."""
        with self._lock:
            traffic = self.services[service]
            traffic.advance(time.monotonic())
            traffic.error_fraction = error_fraction
            traffic.breached_at = time.time()
            return traffic.breached_at

    def heal(self, service: str) -> None:
        """Back to no errors."""
        with self._lock:
            traffic = self.services[service]
            traffic.advance(time.monotonic())
            traffic.error_fraction = 0.0

    def exposition(self) -> str:
        now = time.monotonic()
        lines = [
            "# HELP http_requests_total Requests served.",
            "# TYPE http_requests_total counter",
        ]
        histogram: list[str] = [
            "# HELP http_request_duration_seconds Request latency.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        with self._lock:
            for traffic in self.services.values():
                traffic.advance(now)
                body = traffic.lines()
                lines.extend(body[:2])
                histogram.extend(body[2:])
        return "\n".join(lines + histogram) + "\n"
