"""A throwaway redis-server on a free loopback port: stop, pause (SIGSTOP), resume, restart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """One redis-server started by a test; without `persistent` a restart comes back empty."""

    def __init__(self, workdir: Path, persistent: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.persistent = persistent

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait (bounded) until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        aof = ["yes", "--appendfsync", "always"] if self.persistent else ["no"]
        args += ["--save", "", "--appendonly", *aof, "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if probe.ping():
                    probe.close()
                    return
            except redis.RedisError:
                time.sleep(0.05)
        probe.close()
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def pause(self) -> None:
        """SIGSTOP: the server keeps its socket but answers nothing (a stall)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT: the server goes on, buffered commands included."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Stop this server (by its PID) and wait for it."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (the data survives only when persistent)."""
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        """A client of this server (decoded answers)."""
        return redis.Redis.from_url(self.url, decode_responses=True)
