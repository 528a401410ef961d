"""One delivery, many alerts: concurrent facts, ordered reservations, one silence list."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from receiver.app import default_silence_check
from receiver.intake.payload import parse_message
from receiver.state.store import Store
from tests.support import Backend, alert, payload


def services_file(tmp_path: Path, count: int) -> str:
    """ROLLBACK_CONFIG with `count` services, one folder each in one repository."""
    lines = ["services:"]
    for n in range(count):
        lines += [f"  svc{n:03d}:", f"    gitops: {{repo: acme/gitops, path: k8s/svc{n:03d}}}"]
    path = tmp_path / "services.yml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def delivery(count: int) -> list[dict[str, Any]]:
    """`count` trigger alerts plus a repeat, a resolved alert and a non-trigger alert."""
    alerts = [alert(f"svc{n:03d}", tier="critical" if n % 2 else "emergency") for n in range(count)]
    alerts.insert(7, dict(alerts[1]))  # a started episode twice in one delivery
    alerts.append(alert("svc001", status="resolved", tier="critical"))
    alerts.append(alert("svc002", alertname="HighLatency", rollback_tier=""))
    return alerts


def decisions(outcomes: list[Any]) -> list[tuple[str, str, str]]:
    return [(o.service, o.decision, o.reason) for o in outcomes]


def test_one_delivery_decides_as_its_alerts_posted_one_by_one(
    make_engine: Any, real_redis: redis_lib.Redis, backend: Backend, tmp_path: Path
) -> None:
    backend.release = threading.Event()  # rollbacks hold their locks while we compare
    env = {"ROLLBACK_CONFIG": services_file(tmp_path, 200), "MAX_CONCURRENT_ROLLBACKS": "3"}
    message = parse_message(payload(*delivery(200)))
    try:
        batch_store = Store(real_redis, prefix=f"t{secrets.token_hex(3)}:")
        batch_engine = make_engine(store=batch_store, **env)
        batch = batch_engine.handle_delivery(message.alerts)
        single_store = Store(real_redis, prefix=f"t{secrets.token_hex(3)}:")
        single_engine = make_engine(store=single_store, **env)
        single = [single_engine.handle_alert(a) for a in message.alerts]
    finally:
        backend.release.set()
    # Their rollbacks end (and log) inside the test, not while pytest tears its capture down.
    assert batch_engine.wait_idle(10) and single_engine.wait_idle(10)
    assert decisions(batch) == decisions(single)
    reasons = [reason for _s, _d, reason in decisions(batch)]
    assert reasons.count("passed") == 3 and reasons.count("global_limit") == 197
    assert reasons.count("duplicate") == 1
    assert [o.service for o in batch] == [a.labels.get("service", "") for a in message.alerts]


@pytest.fixture
def black_hole() -> Iterator[tuple[str, list[socket.socket]]]:
    """An Alertmanager that accepts connections and never answers; the accepted sockets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    server.close()


def test_a_hanging_alertmanager_costs_one_bounded_timeout_per_delivery(
    make_engine: Any, black_hole: tuple[str, list[socket.socket]], tmp_path: Path
) -> None:
    url, accepted = black_hole
    engine = make_engine(
        ROLLBACK_CONFIG=services_file(tmp_path, 10),
        ALERTMANAGER_URL=url,
        MAX_CONCURRENT_ROLLBACKS="20",
        DRY_RUN="true",
    )
    engine.silences = default_silence_check(engine.settings)
    alerts = parse_message(payload(*[alert(f"svc{n:03d}") for n in range(10)])).alerts
    started = time.monotonic()
    outcomes = engine.handle_delivery(alerts)
    took = time.monotonic() - started
    assert [o.reason for o in outcomes] == ["dry_run"] * 10  # proceeds, as the contract says
    assert took < 2.0, f"10 alerts took {took:.1f} s against a hanging Alertmanager"
    assert len(accepted) == 1  # one silence list for the whole delivery


def test_status_lists_silences_once_and_says_unknown_when_alertmanager_hangs(
    make_engine: Any, black_hole: tuple[str, list[socket.socket]], tmp_path: Path
) -> None:
    url, accepted = black_hole
    engine = make_engine(ROLLBACK_CONFIG=services_file(tmp_path, 100), ALERTMANAGER_URL=url)
    engine.silences = default_silence_check(engine.settings)
    started = time.monotonic()
    statuses = engine.statuses()
    took = time.monotonic() - started
    assert len(statuses) >= 100 and took < 2.0
    assert all(s["blackout"]["silence"].startswith("unknown") for s in statuses)
    assert len(accepted) == 1


def test_each_delivery_lists_silences_again(make_engine: Any, tmp_path: Path) -> None:
    listed: list[int] = []

    class CountingClient:
        def list_silences(self) -> list[Any]:
            listed.append(1)
            return []

    engine = make_engine(
        ROLLBACK_CONFIG=services_file(tmp_path, 5),
        DRY_RUN="true",
        ALERTMANAGER_URL="http://127.0.0.1:9",
    )
    engine.silences = default_silence_check(engine.settings, client=CountingClient())
    for starts_at in ("2026-11-26T12:00:00Z", "2026-11-26T13:00:00Z"):
        alerts = [alert(f"svc{n:03d}", starts_at=starts_at) for n in range(5)]
        outcomes = engine.handle_delivery(parse_message(payload(*alerts)).alerts)
        assert [o.reason for o in outcomes] == ["dry_run"] * 5
    assert len(listed) == 2  # once per delivery, never reused from an earlier one


def test_a_record_serialises_as_asdict_would() -> None:
    import json
    from dataclasses import asdict

    from receiver.state.history import RollbackRecord

    record = RollbackRecord(
        "rb-1", "api", "prod", "critical", "rollback", "passed", "running", {"a": [1]}, "now"
    )
    record.start_stage("gitops")
    record.checks.append({"name": "cooldown", "passed": True})
    assert json.loads(record.to_json()) == asdict(record)
    assert RollbackRecord.from_json(record.to_json()) == record
