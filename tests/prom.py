"""Real Prometheus (and Alertmanager) for tests, fed by a controllable exporter; stopped by PID.

    with Exporter() as exporter:
        exporter.traffic.set("api", "production", rps=100, error_ratio=0.5)
        prom = Prometheus.start(tmp_path, targets=[exporter.address], rule_files=SHIPPED_RULES)
        try:
            prom.wait_for('slo:error_budget_consumed:ratio{service="api"}')
        finally:
            prom.stop()

Everything binds 127.0.0.1 on a free port; nothing is left running after `stop()`.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_RULES = tuple(sorted((ROOT / "alerts").glob("*.yml")))
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(*names: str) -> str:
    """The first of `names` found on PATH (Debian names its Alertmanager differently)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"{' or '.join(names)} not found: run `make tools`")


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True


class _Serving:
    """A loopback HTTP server on a thread; a context manager that always closes its socket."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.owner = self  # type: ignore[attr-defined]
        self.port = int(self.server.server_address[1])
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        exporter: Exporter = self.server.owner  # type: ignore[attr-defined]
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = exporter.traffic.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Exporter(_Serving):
    """Serves `Traffic` on http://127.0.0.1:PORT/metrics for Prometheus to scrape."""

    def __init__(self) -> None:
        self.traffic = Traffic()
        super().__init__(_MetricsHandler)


class _SinkHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        sink: WebhookSink = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with sink.lock:
            sink.received.append(json.loads(body or b"null"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebhookSink(_Serving):
    """Keeps every JSON body POSTed to it (a bare Alertmanager webhook receiver)."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.lock = threading.Lock()
        super().__init__(_SinkHandler)

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


# -- processes -------------------------------------------------------------------------------


class _Process:
    """A child process with a log file, stopped by its PID (SIGTERM, then SIGKILL)."""

    name = "process"

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def _wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited {self.proc.returncode}: {self.logs()[-2000:]}"
                )
            try:
                if requests.get(url, timeout=0.5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready in {timeout}s: {self.logs()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._log.closed:
            self._log.close()


class Prometheus(_Process):
    """/usr/bin/prometheus with its TSDB in a temporary folder, 1s scrape and evaluation."""

    name = "prometheus"

    def __init__(self, args: list[str], log_path: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        super().__init__(args, log_path)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        targets: Iterable[str] = (),
        rule_files: Iterable[Path] = (),
        alertmanagers: Iterable[str] = (),
        external_labels: Mapping[str, str] | None = None,
        interval: str = "1s",
        timeout: float = 20,
    ) -> Prometheus:
        """Write a config (scrape `targets`, load `rule_files`) and start; wait until ready."""
        port = free_port()
        home = workdir / f"prometheus-{port}"
        home.mkdir(parents=True)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "evaluation_interval": interval,
                "scrape_timeout": interval,
            },
            "rule_files": [str(Path(p).resolve()) for p in rule_files],
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": list(targets)}]}],
        }
        if external_labels:
            config["global"]["external_labels"] = dict(external_labels)
        if alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
            }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        args = [
            binary("prometheus"),
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        prom = cls(args, home / "prometheus.log", port)
        prom._wait_http(f"{prom.url}/-/ready", timeout)
        return prom

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def wait_for(
        self,
        expr: str,
        check: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30,
    ) -> list[dict[str, Any]]:
        """Poll an instant query until `check(result)` holds; return the result."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if check(result):
                return result
            time.sleep(0.2)
        raise TimeoutError(f"{expr!r} did not satisfy the check in {timeout}s: {result!r}")

    def wait_for_alert(self, alertname: str, state: str = "firing", timeout: float = 30) -> Any:
        """Poll /api/v1/alerts until an alert of that name is in `state`; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = requests.get(f"{self.url}/api/v1/alerts", timeout=5)
            for found in response.json()["data"]["alerts"]:
                if found["labels"].get("alertname") == alertname and found["state"] == state:
                    return found
            time.sleep(0.2)
        raise TimeoutError(f"{alertname} not {state} in {timeout}s")


class Alertmanager(_Process):
    """prometheus-alertmanager (no clustering) routing everything to one webhook."""

    name = "alertmanager"

    def __init__(self, args: list[str], log_path: Path, port: int) -> None:
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"
        super().__init__(args, log_path)

    @classmethod
    def start(
        cls,
        workdir: Path,
        webhook_url: str,
        *,
        group_by: Iterable[str] = ("alertname", "service", "namespace"),
        group_wait: str = "0s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        config: Mapping[str, Any] | None = None,
        timeout: float = 20,
    ) -> Alertmanager:
        """Start with `config`, or a single-route config posting to `webhook_url`."""
        port = free_port()
        home = workdir / f"alertmanager-{port}"
        home.mkdir(parents=True)
        config = config or {
            "route": {
                "receiver": "hook",
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook_url}]}],
        }
        (home / "alertmanager.yml").write_text(yaml.safe_dump(dict(config)))
        args = [
            binary("prometheus-alertmanager", "alertmanager"),
            f"--config.file={home / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        am = cls(args, home / "alertmanager.log", port)
        am._wait_http(f"{am.url}/-/ready", timeout)
        return am
