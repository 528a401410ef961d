"""Test doubles for the core: a recording backend and a collecting notifier."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from receiver.act.base import ActionContext, RollbackAction, RollbackJob, TargetFacts
from receiver.config import ServiceTarget, Settings
from receiver.errors import ActionError
from receiver.tell.base import Event


@dataclass
class Backend:
    """Shared behaviour of the recording actions in one test: what they report and do."""

    current: str = "bad1234"
    target: str = "good123"
    change_age: float | None = 600.0  # seconds since the change to blame; None = no change
    already_rolled_back: bool = False
    autosync_blocks: bool = False
    fail_stage: str | None = None  # "gitops" | "validation"
    execute_seconds: float = 0.0
    inspect_error: str | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event | None = None  # when set, execute waits for it

    def factory(
        self, settings: Settings, target: ServiceTarget, mode: str
    ) -> Sequence[RollbackAction]:
        return [RecordingAction(self)]

    def executed(self) -> list[str]:
        with self.lock:
            return [rid for what, rid in self.calls if what == "execute"]


class RecordingAction(RollbackAction):
    """Changes nothing; remembers calls; can be made slow or failing."""

    stage = "gitops"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def inspect(self, job: RollbackJob) -> TargetFacts:
        b = self.backend
        if b.inspect_error:
            raise ActionError("gitops", b.inspect_error)
        return TargetFacts(
            current=b.current,
            target=job.target_commit or b.target,
            last_change_at=None if b.change_age is None else time.time() - b.change_age,
            already_rolled_back=b.already_rolled_back,
            autosync_blocks=b.autosync_blocks,
        )

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        b = self.backend
        with b.lock:
            b.calls.append(("execute", job.rollback_id))
        if b.release is not None:
            b.release.wait(30)
        elif b.execute_seconds:
            time.sleep(b.execute_seconds)
        ctx.ensure_owned()
        ctx.log(f"pushed revert99 restoring {job.service}")
        ctx.details.update(
            rolled_back_from=b.current,
            target_commit=job.target_commit or b.target,
            revert_commit="revert99",
        )
        if b.fail_stage == "gitops":
            raise ActionError("gitops", "push rejected: Update is not a fast forward")

    def validate(self, job: RollbackJob, ctx: ActionContext) -> None:
        if self.backend.fail_stage == "validation":
            raise ActionError("validation", "application Degraded")


class Collector:
    """A notifier double: keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[str]:
        with self._lock:
            return [e.kind for e in self.events]


def alert(
    service: str = "api",
    *,
    tier: str = "emergency",
    status: str = "firing",
    fingerprint: str | None = None,
    starts_at: str = "2026-11-26T12:35:31.948Z",
    alertname: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """An alert in Alertmanager 0.25's webhook shape (see tests/fixtures/alertmanager-0.25)."""
    name = alertname or (
        "TriggerEmergencyRollback" if tier == "emergency" else "TriggerCriticalRollback"
    )
    return {
        "status": status,
        "labels": {
            "alertname": name,
            "namespace": "production",
            "rollback_tier": tier,
            "service": service,
            "severity": "critical",
            **labels,
        },
        "annotations": {"summary": f"{service}: budget burning"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T12:40:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": fingerprint or f"{abs(hash((service, tier))) % 16**16:016x}",
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    first = alerts[0] if alerts else {"labels": {}}
    return {
        "receiver": "rollback-receiver",
        "status": "firing",
        "alerts": list(alerts),
        "groupLabels": {},
        "commonLabels": dict(first["labels"]),
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="TriggerEmergencyRollback"}',
        "truncatedAlerts": 0,
    }


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve a Flask app on a free loopback port in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def sample(name: str, **labels: str) -> float:
    """A counter's current value through the public registry (0 when never incremented)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def age_starts(store: Any, seconds: float) -> None:
    """Move every recorded rollback start `seconds` into the past (time passing, Redis clock)."""
    for pattern in ("starts:*", "tstarts:*", "gstarts"):
        for key in store.client.scan_iter(store.prefix + pattern):
            for member, score in store.client.zrange(key, 0, -1, withscores=True):
                store.client.zadd(key, {member: score - seconds * 1000})
