"""gunicorn configuration: multiprocess metrics, graceful stop at a safe point."""

from __future__ import annotations

import logging
import os
from typing import Any

bind = os.environ.get("RECEIVER_BIND", f"0.0.0.0:{os.environ.get('PORT', '8080')}")
workers = int(os.environ.get("RECEIVER_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("RECEIVER_THREADS", "4"))
timeout = 30
graceful_timeout = int(os.environ.get("RECEIVER_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
preload_app = False
# Alertmanager posts are small; refuse huge header sections early.
limit_request_field_size = 8190

# gunicorn >= 25.1 opens a control socket at $HOME/.gunicorn/gunicorn.ctl (or under
# $XDG_RUNTIME_DIR): two receivers on one machine would share it. Off unless
# RECEIVER_CONTROL_SOCKET names a path for this receiver. Older gunicorn versions ignore
# these names in a config module (a command-line flag would be an error there).
_control_socket_path = os.environ.get("RECEIVER_CONTROL_SOCKET", "")
control_socket_disable = not _control_socket_path
if _control_socket_path:
    control_socket = _control_socket_path


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges must not linger in the multiprocess files."""
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def worker_exit(server: Any, worker: Any) -> None:
    """SIGTERM: stop taking work, let running rollbacks finish or stop at a safe point."""
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", {}) if app is not None else {}
    engine = extensions.get("rollback")
    sweeper = extensions.get("sweeper")
    if sweeper is not None:
        sweeper.stop()
    trimmer = extensions.get("trimmer")
    if trimmer is not None:
        trimmer.stop()
    if engine is not None:
        logging.getLogger("receiver.app").info("worker stopping: waiting for running rollbacks")
        engine.shutdown(timeout=max(graceful_timeout - 10, 1))
        notifications = getattr(engine, "notifications", None)
        if notifications is not None:
            notifications.close(5)
