"""`rollback-receiver serve`: become gunicorn running the receiver."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from receiver.cli.shared import fail, load_settings

DEFAULT_WORKERS = 2
MAX_WORKERS = 64
ZERO_SERIES = "import sys; from receiver import metrics; metrics.precreate(sys.argv[1:])"
# glibc gives each thread that meets a busy arena a new one, up to 8 a core, and keeps what a
# request freed in its thread's arena: a worker's 4 request threads then hold up to 4 copies
# of a scrape's or a delivery's transient memory. Two arenas hold that RSS flat
# (docs/performance.md). glibc reads it at start, so it must be in gunicorn's environment
# (os.execvpe below); set MALLOC_ARENA_MAX yourself to override, 0 for glibc's own default.
# musl and macOS ignore it.
MALLOC_ARENAS = "2"


def _workers_from_env(value: str | None) -> int:
    """RECEIVER_WORKERS as a worker count; a bad value is one line, not a traceback."""
    if not value:
        return DEFAULT_WORKERS
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        fail(f"RECEIVER_WORKERS: {value!r} is not a whole number from 1 to {MAX_WORKERS}")
    return int(value)


@click.command()
@click.option(
    "--bind",
    default=None,
    metavar="HOST:PORT",
    help="address to listen on (default: 0.0.0.0:$PORT; PORT defaults to 8080)",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, MAX_WORKERS),
    help=f"gunicorn workers (default: $RECEIVER_WORKERS, else {DEFAULT_WORKERS}; "
    "always 1 without REDIS_URL)",
)
def serve(bind: str | None, workers: int | None) -> None:
    """Run the receiver under gunicorn."""
    settings = load_settings()
    env = dict(os.environ)
    env["RECEIVER_BIND"] = bind or f"0.0.0.0:{settings.port}"
    count = workers or _workers_from_env(env.get("RECEIVER_WORKERS"))
    if settings.embedded_store and count > 1:
        click.echo(
            "warning: REDIS_URL unset: embedded store, so one worker only "
            "(locks are not shared between processes)",
            err=True,
        )
        count = 1
    env["RECEIVER_WORKERS"] = str(count)
    env.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENAS)
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rollback-metrics-")
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):  # counters of a previous run are not ours
        stale.unlink()
    # The zero series from a process that exits: the workers find them written and skip them,
    # so none keeps their 38 metric objects a service. Should it fail, a worker writes them.
    subprocess.run([sys.executable, "-c", ZERO_SERIES, *settings.services], env=env, check=False)
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    os.execvpe(  # noqa: S606 - become gunicorn
        gunicorn, [gunicorn, "-c", "python:receiver.gunicorn_conf", "receiver.wsgi:app"], env
    )
