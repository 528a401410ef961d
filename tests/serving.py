"""Start `rollback-receiver serve` as a real process for tests; stop it by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.procs import free_port

ROOT = Path(__file__).resolve().parents[1]


class Served:
    """A receiver under gunicorn on a loopback port."""

    def __init__(self, env: dict[str, str], workers: int, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"serve-{self.port}.log"
        self.metrics_dir = tmp / f"mp-{self.port}"
        full_env = {**os.environ, **env, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "rollback-receiver"),
                "serve",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
            ],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.logs()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=0.5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not answer in {timeout}s: {self.logs()[-2000:]}")

    def worker_pids(self) -> set[str]:
        """gunicorn's workers: the master's children."""
        return {
            pid
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir()
            for pid in (task / "children").read_text().split()
        }

    def metric_pids(self) -> set[str]:
        """The worker PIDs that have written counters (multiprocess files; not `serve`'s zeros)."""
        files = {p.stem.rsplit("_", 1)[-1] for p in self.metrics_dir.glob("counter_*.db")}
        return files & self.worker_pids()

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def post(self, path: str, body: Any, **headers: str) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=headers, timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
