"""The `rollback_*` metrics, named exactly as the contract fixes them.

Counters and histograms are process-local and, under gunicorn, aggregated
across workers by prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR). The two gauges `rollback_in_progress` and
`rollback_last_transition_timestamp_seconds` are not kept in the process at
all: `render` reads them from the state store at scrape time, so they tell the
truth whichever replica, worker or CLI ran the rollback.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as mp

from receiver import exposition
from receiver.decide.vocabulary import METRIC_SKIP_REASONS
from receiver.state.history import StageName

SKIP_REASONS = METRIC_SKIP_REASONS
FAILED_STAGES = tuple(StageName)
TIERS = ("critical", "emergency", "manual")
CHANNELS = ("slack", "pagerduty", "incident")
ZERO_SERIES_WRITER = "zero-series-writer"  # in PROMETHEUS_MULTIPROC_DIR: "<pid> <services digest>"

STARTED = Counter("rollback_started_total", "Rollbacks started", ["service", "tier"])
COMPLETED = Counter("rollback_completed_total", "Rollbacks completed", ["service", "tier"])
FAILED = Counter("rollback_failed_total", "Rollbacks failed", ["service", "tier", "stage"])
SKIPPED = Counter("rollback_skipped_total", "Triggers not rolled back", ["service", "reason"])
DECISIONS = Counter("rollback_decisions_total", "Every decision", ["decision", "reason"])
NOT_EFFECTIVE = Counter(
    "rollback_not_effective_total", "Rolled back, but errors did not fall", ["service"]
)
NOTIFY_FAILURES = Counter(
    "rollback_notification_failures_total", "Notifications not delivered", ["channel"]
)
DURATION = Histogram(
    "rollback_duration_seconds",
    "Time from rollback start to its end",
    ["service"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800),
)
WEBHOOK_REQUESTS = Counter("rollback_webhook_requests_total", "Webhook requests", ["code"])
WEBHOOK_DURATION = Histogram(
    "rollback_webhook_duration_seconds",
    "Webhook request latency",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

GITHUB_RATELIMIT_REMAINING = Gauge(
    "rollback_github_ratelimit_remaining",
    "The last X-RateLimit-Remaining GitHub answered (per process)",
    multiprocess_mode="mostrecent",
)


def precreate(services: Iterable[str]) -> None:
    """Zero series for configured services, so rate() and absent() work from the start.

    Under multiprocess mode one process of the directory writes them (its counter file
    outlives it): every scrape parses every process's file anew, 38 series a configured
    service each, so a copy in every worker made each scrape and each worker larger.
    """
    services = sorted(services)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        _zero_series(services)
        return
    written = hashlib.sha256("\n".join(services).encode()).hexdigest()[:16]
    with (Path(directory) / ZERO_SERIES_WRITER).open("a+") as marker:
        fcntl.flock(marker, fcntl.LOCK_EX)  # workers starting together: one writes, one waits
        marker.seek(0)
        writer, _, wrote = marker.read().partition(" ")
        if wrote == written and (Path(directory) / f"counter_{writer}.db").exists():
            return
        _zero_series(services)  # none yet, other services (a reload), or their file was removed
        marker.truncate(0)
        marker.write(f"{os.getpid()} {written}")


def _zero_series(services: Iterable[str]) -> None:
    for service in services:
        NOT_EFFECTIVE.labels(service)
        for tier in TIERS:
            STARTED.labels(service, tier)
            COMPLETED.labels(service, tier)
            for stage in FAILED_STAGES:
                FAILED.labels(service, tier, stage)
        for reason in SKIP_REASONS:
            SKIPPED.labels(service, reason)
    for channel in CHANNELS:
        NOTIFY_FAILURES.labels(channel)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_gauges(in_progress: dict[str, int], transitions: dict[tuple[str, str], float]) -> bytes:
    """Text format for the two Redis-backed gauges."""
    lines = [
        "# HELP rollback_in_progress 1 while a rollback of the service runs (from the store)",
        "# TYPE rollback_in_progress gauge",
    ]
    lines += [
        f'rollback_in_progress{{service="{_escape(s)}"}} {v}'
        for s, v in sorted(in_progress.items())
    ]
    lines += [
        "# HELP rollback_last_transition_timestamp_seconds When the newest rollback of the "
        "service last entered a state (from the store)",
        "# TYPE rollback_last_transition_timestamp_seconds gauge",
    ]
    lines += [
        "rollback_last_transition_timestamp_seconds"
        f'{{service="{_escape(s)}",state="{_escape(st)}"}} {ts}'
        for (s, st), ts in sorted(transitions.items())
    ]
    return ("\n".join(lines) + "\n").encode()


def render_autosync_gauge(apps: Iterable[str]) -> bytes:
    """Text format for `rollback_argocd_autosync_disabled{app}` (from the store)."""
    lines = [
        "# HELP rollback_argocd_autosync_disabled 1 while an Argo CD app's automated sync is off "
        "because the receiver turned it off (ARGOCD_DISABLE_AUTOSYNC; from the store)",
        "# TYPE rollback_argocd_autosync_disabled gauge",
    ]
    lines += [f'rollback_argocd_autosync_disabled{{app="{_escape(a)}"}} 1' for a in sorted(apps)]
    return ("\n".join(lines) + "\n").encode()


def render_process_metrics() -> list[bytes]:
    """Counters and histograms: all workers' under multiprocess mode, else this process's.

    Chunks of the answer, not one string: a scrape's ~260 kB (100 services) is not copied
    again to append the gauges.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        try:
            return exposition.render(directory)
        except exposition.UnknownFile:  # not ours to merge: prometheus_client's collector can
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            return [generate_latest(registry)]
    from prometheus_client import REGISTRY

    return [generate_latest(REGISTRY)]
