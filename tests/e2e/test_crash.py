"""End to end: kill -9 the gunicorn worker running a rollback; it is marked, told, not redone."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict

from tests.e2e.conftest import Chain, trigger_answer
from tests.e2e.stack import pid_alive, wait_until
from tests.serving import Served

LEASE_SECONDS = 3


def worker_running_rollback(served: Served, service: str) -> int | None:
    """The PID of the worker that started a rollback of `service` (its multiprocess counters)."""
    for path in Path(served.metrics_dir).glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[-1])
        for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if name == "rollback_started_total" and labels.get("service") == service and value:
                return pid
    return None


def test_a_worker_killed_mid_rollback_leaves_an_interrupted_record_and_a_free_lock(
    make_chain: Callable[..., Chain],
) -> None:
    """The surviving workers reap the expired lease: `interrupted`, notified, no second try."""
    # Argo CD's sync never finishes: the rollback sits in validation, polling.
    chain = make_chain("crash", ticks_to_finish=10**6)
    served = chain.serve(
        workers=2,
        LOCK_LEASE_SECONDS=str(LEASE_SECONDS),
        REAPER_INTERVAL_SECONDS="1",
        VALIDATION_TIMEOUT_SECONDS="120",
    )
    chain.route(served)
    chain.breach()
    answer = chain.first_answer()
    assert answer["decision"] == "rollback", answer
    rollback_id = answer["rollback_id"]

    wait_until(
        "the revert commit and Argo CD's sync operation (mid-rollback)",
        lambda: chain.new_commits() and chain.app.operation is not None,
        20,
        detail=chain.diagnostics,
    )
    assert chain.record(rollback_id)["state"] == "running"
    status = chain.api("GET", "/api/v1/status", params={"service": chain.service}).json()
    assert status["services"][0]["locked_by"] == rollback_id, status
    pid = wait_until(
        "the worker PID that started the rollback",
        lambda: worker_running_rollback(served, chain.service),
        5,
    )
    os.kill(pid, signal.SIGKILL)
    wait_until(f"worker {pid} to die", lambda: not pid_alive(pid), 5)

    record = chain.wait_state(
        rollback_id, ("interrupted", "completed", "failed"), timeout=LEASE_SECONDS + 15
    )
    assert record["state"] == "interrupted", record
    assert "lease" in str(record.get("error", "")) or "interrupted" in json.dumps(record)
    wait_until(
        "a Slack message about the interrupted rollback",
        lambda: [
            m
            for m in chain.slack.messages
            if rollback_id in json.dumps(m) and "interrupt" in json.dumps(m).lower()
        ],
        10,
    )
    status = chain.api("GET", "/api/v1/status", params={"service": chain.service}).json()
    assert status["services"][0]["locked_by"] is None, status
    chain.wait_firing("RollbackFailed")

    before = len(chain.deliveries())
    for delivery in chain.wait_deliveries(before + 2, timeout=20)[before:]:
        repeat = trigger_answer(delivery, 0)
        assert (repeat["decision"], repeat["reason"]) == ("skipped", "duplicate"), repeat
        assert repeat["rollback_id"] == rollback_id
    assert len(chain.new_commits()) == 1
    assert [r["id"] for r in chain.history()] == [rollback_id]
