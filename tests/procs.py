"""Shared test infrastructure: free ports, child processes stopped by PID, the real Prometheus and
Alertmanager, and loopback HTTP servers on a thread.

    with Alertmanager() as am:                      # minimal config, temp storage
        ...
    prom = Prometheus(tmp_path, targets=[exporter.address], rule_files=SHIPPED_RULES).start()
    try:
        prom.wait_for('slo:error_budget_consumed:ratio{service="api"}')
    finally:
        prom.stop()

Everything binds 127.0.0.1 on a free port; nothing is left running after `stop()`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Self

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_RULES = tuple(sorted((ROOT / "alerts").glob("*.yml")))
PROMETHEUS_BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"
# Debian names its Alertmanager differently from upstream.
ALERTMANAGER_BINARY = (
    shutil.which("prometheus-alertmanager")
    or shutil.which("alertmanager")
    or "/usr/bin/prometheus-alertmanager"
)

Answer = tuple[int, bytes, dict[str, str]]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _OnLoopback:
    """Something listening on 127.0.0.1:`port`."""

    port: int

    @property
    def address(self) -> str:
        """host:port (e.g. a scrape target)."""
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.address}"


# -- child processes ---------------------------------------------------------------------------


class Process(_OnLoopback):
    """A child process on a free loopback port with a log file in its own folder, stopped by PID.

    The folder is a fresh temp dir, under `workdir` when given (then kept for inspection),
    otherwise in the system temp dir (then removed by `stop()`).
    """

    name = "process"
    ready_path = "/-/ready"
    start_timeout = 20.0

    def __init__(self, workdir: Path | None = None) -> None:
        self._owns_dir = workdir is None
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=workdir))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} not started"
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.dir / "log"

    def command(self) -> list[str]:
        """The command line listening on `self.port`."""
        raise NotImplementedError

    def start(self, attempts: int = 3) -> Self:
        """Spawn on a free port and wait until ready; retry, since a port can be taken meanwhile."""
        for _ in range(attempts):
            self.port = free_port()
            self._spawn(self.command())
            if self._ready(self.ready_path, self.start_timeout):
                return self
            self.stop(cleanup=False)
        raise RuntimeError(f"{self.name} did not start: {self.log_tail()}")

    def _spawn(self, args: list[str]) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def _ready(self, path: str, timeout: float) -> bool:
        """Poll GET `path` until it answers 200; False once the process exits or time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with requests.get(self.url + path, timeout=0.5) as response:
                    if response.status_code == 200:
                        return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def logs(self) -> str:
        if self._log is not None and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.logs()[-chars:]

    def stop(self, cleanup: bool = True) -> None:
        """SIGTERM by PID, SIGKILL if it lingers; remove an owned temp folder when `cleanup`."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if cleanup and self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _PrometheusFamily(Process):
    """A Prometheus-style binary: one YAML config file, a storage folder, a web listen address."""

    binary = ""
    storage_flag = ""
    extra_flags: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any], workdir: Path | None) -> None:
        super().__init__(workdir)
        self.config = dict(config)
        self.config_path = self.dir / f"{self.name}.yml"
        self.write_config()

    def write_config(self) -> None:
        """(Re)write `self.config` to the file the process reads."""
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"{self.storage_flag}={self.dir / 'data'}",
            f"--web.listen-address={self.address}",
            *self.extra_flags,
            "--log.level=warn",
        ]


# -- Alertmanager ------------------------------------------------------------------------------

MINIMAL_ALERTMANAGER_CONFIG: dict[str, Any] = {
    "route": {"receiver": "default"},
    "receivers": [{"name": "default"}],
}


def webhook_alertmanager_config(
    webhook_url: str,
    *,
    group_by: Iterable[str] = ("alertname", "service", "namespace"),
    group_wait: str = "0s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """A single-route config that posts every alert group to `webhook_url`."""
    return {
        "route": {
            "receiver": "hook",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook_url}]}],
    }


class Alertmanager(_PrometheusFamily):
    """The machine's Alertmanager (no clustering, temp storage) with `config` (default: minimal)."""

    name = "alertmanager"
    binary = ALERTMANAGER_BINARY
    storage_flag = "--storage.path"
    extra_flags = ("--cluster.listen-address=",)

    def __init__(
        self, config: Mapping[str, Any] | None = None, *, workdir: Path | None = None
    ) -> None:
        super().__init__(MINIMAL_ALERTMANAGER_CONFIG if config is None else config, workdir)

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds whose labels include `labels`."""
        params = [("filter", f'{k}="{v}"') for k, v in labels.items()]
        with requests.get(f"{self.url}/api/v2/alerts", params=params, timeout=5) as response:
            response.raise_for_status()
            return list(response.json())


# -- Prometheus --------------------------------------------------------------------------------


class Prometheus(_PrometheusFamily):
    """/usr/bin/prometheus with its TSDB in a temp folder, 1s scrape and evaluation by default."""

    name = "prometheus"
    binary = PROMETHEUS_BINARY
    storage_flag = "--storage.tsdb.path"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        targets: Iterable[str] = (),
        rule_files: Iterable[Path] = (),
        alertmanagers: Iterable[str] = (),
        external_labels: Mapping[str, str] | None = None,
        interval: str = "1s",
        scrape_timeout: str | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "evaluation_interval": interval,
                "scrape_timeout": scrape_timeout or interval,
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
        super().__init__(config, workdir)

    def query(self, expr: str) -> list[dict[str, Any]]:
        with requests.get(
            f"{self.url}/api/v1/query", params={"query": expr}, timeout=5
        ) as response:
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
            with requests.get(f"{self.url}/api/v1/alerts", timeout=5) as response:
                for found in response.json()["data"]["alerts"]:
                    if found["labels"].get("alertname") == alertname and found["state"] == state:
                        return found
            time.sleep(0.2)
        raise TimeoutError(f"{alertname} not {state} in {timeout}s")


# -- loopback HTTP servers ---------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the owning `LoopbackServer`'s `answer`."""

    def _serve(self) -> None:
        owner: LoopbackServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload, headers = owner.answer(self.command, self.path, dict(self.headers), body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackServer(_OnLoopback):
    """A threaded HTTP server on 127.0.0.1 (free port) on a thread; start()/stop() or `with`."""

    protocol_version = "HTTP/1.0"
    poll_interval = 0.05

    def __init__(self) -> None:
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """(status, body, headers) for one request; subclasses say what they serve."""
        return 404, b"", {}

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"protocol_version": self.protocol_version})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            daemon=True,
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MetricsServer(LoopbackServer):
    """Serves `exposition()` on GET /metrics in the Prometheus text format."""

    def exposition(self) -> str:
        raise NotImplementedError

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if method != "GET" or path.split("?")[0] != "/metrics":
            return 404, b"", {}
        return 200, self.exposition().encode(), {"Content-Type": "text/plain; version=0.0.4"}
