"""gunicorn's control socket: two receivers on one machine never share one."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import gunicorn
import pytest

from tests.serving import Served

pytestmark = pytest.mark.skipif(
    tuple(int(part) for part in gunicorn.__version__.split(".")[:2]) < (25, 1),
    reason="gunicorn before 25.1 has no control socket",
)


def base_env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "XDG_RUNTIME_DIR": "", "BLACKOUT_WINDOWS": "none"}


def test_two_serves_with_one_home_open_no_shared_control_socket(tmp_path: Path) -> None:
    """By default no receiver opens $HOME/.gunicorn/gunicorn.ctl, so two never collide."""
    home = tmp_path / "home"
    home.mkdir()
    first = Served(base_env(home), workers=1, tmp=tmp_path)
    try:
        second = Served(base_env(home), workers=1, tmp=tmp_path)
        try:
            assert not (home / ".gunicorn" / "gunicorn.ctl").exists()
            assert "control socket" not in first.logs().lower()
            assert "control socket" not in second.logs().lower()
        finally:
            second.stop()
    finally:
        first.stop()


def test_receiver_control_socket_scopes_the_socket_to_one_receiver(tmp_path: Path) -> None:
    """RECEIVER_CONTROL_SOCKET opens the socket at that path, one per receiver."""
    home = tmp_path / "home"
    home.mkdir()
    paths = [tmp_path / "a.ctl", tmp_path / "b.ctl"]
    servers = [
        Served({**base_env(home), "RECEIVER_CONTROL_SOCKET": str(path)}, workers=1, tmp=tmp_path)
        for path in paths
    ]
    try:
        for path in paths:
            for _ in range(50):
                if path.exists():
                    break
                time.sleep(0.1)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(path))
        assert not (home / ".gunicorn" / "gunicorn.ctl").exists()
    finally:
        for server in servers:
            server.stop()
