"""A `monitor` round is decided like one delivery: its global_limit skips are one escalation.

The Prometheus alerts API is the one part stood in for here (its shape: `state`, `labels`,
`annotations`, `activeAt`); tests/test_monitor.py runs `monitor` against a real Prometheus.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from receiver.errors import StoreUnavailable
from receiver.monitor import run_once
from receiver.state.locking import Locking
from receiver.tell import base
from tests.support import Backend, Collector
from tests.test_escalation_digest import services_file


class AlertsApi:
    """What `run_once` asks Prometheus: the firing alerts and the configuration's YAML."""

    def __init__(self, services: list[str]) -> None:
        self.firing = [
            {
                "state": "firing",
                "labels": {
                    "alertname": "TriggerEmergencyRollback",
                    "service": service,
                    "namespace": "production",
                    "rollback_tier": "emergency",
                },
                "annotations": {"summary": f"{service}: budget burning"},
                "activeAt": "2026-12-01T17:00:00.123456789Z",
            }
            for service in services
        ]

    def alerts(self) -> list[dict[str, Any]]:
        return self.firing

    def config_yaml(self) -> str:
        return "global:\n  scrape_interval: 15s\n"


def test_the_global_limit_skips_of_one_round_are_one_escalation_naming_every_service(
    make_engine: Any, backend: Backend, collector: Collector, tmp_path: Path
) -> None:
    backend.release = threading.Event()  # the started rollbacks hold their locks meanwhile
    engine = make_engine(ROLLBACK_CONFIG=services_file(tmp_path, 8), MAX_CONCURRENT_ROLLBACKS="2")
    services = [f"svc{n:02d}" for n in range(8)] + ["elsewhere"]  # one of another deployment
    try:
        result = run_once(engine, AlertsApi(services), wait=False)  # type: ignore[arg-type]
    finally:
        backend.release.set()
    assert engine.wait_idle(10)  # its rollbacks end (and log) inside the test
    by_service = {o.service: o for o in result.outcomes}
    assert by_service.pop("elsewhere").reason == "not_configured"
    ordered = [by_service[s] for s in services[:-1]]  # the round's order: by service
    assert [o.reason for o in ordered] == ["passed"] * 2 + ["global_limit"] * 6
    started = {r.id for r in engine.store.list_records() if r.decision == "rollback"}
    assert {o.rollback_id for o in ordered[:2]} == started
    escalations = [e for e in collector.events if e.kind == base.ESCALATION]
    assert len(escalations) == 1, [e.service for e in escalations]
    assert escalations[0].details["services"] == [f"svc{n:02d}" for n in range(2, 8)]


def test_redis_failing_mid_round_still_waits_for_the_rollback_the_round_started(
    make_engine: Any,
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--once` exits when the round returns: a rollback left running there would be cut."""
    backend.release = threading.Event()
    engine = make_engine(ROLLBACK_CONFIG=services_file(tmp_path, 2))
    reserve, calls = Locking.reserve, []

    def second_fails(self: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["service"])
        if len(calls) > 1:
            raise StoreUnavailable("state store unreachable: ConnectionError")
        return reserve(self, **kwargs)

    monkeypatch.setattr(Locking, "reserve", second_fails)
    threading.Timer(0.5, backend.release.set).start()  # the rollback ends half a second later
    result = run_once(engine, AlertsApi(["svc00", "svc01"]), wait_seconds=10)  # type: ignore[arg-type]
    assert result.error is not None and "unreachable" in result.error
    assert calls == ["svc00", "svc01"]
    (record,) = [r for r in engine.store.list_records() if r.service == "svc00"]
    assert record.state == "completed" and not result.unfinished
