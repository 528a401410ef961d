"""End to end: the safety guarantees hold with the real Prometheus, Alertmanager and gunicorn."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from tests.e2e.conftest import Chain, trigger_answer
from tests.e2e.stack import RedisServer, wait_until


def test_the_same_delivery_to_two_receiver_processes_makes_one_rollback(
    make_chain: Callable[..., Chain],
) -> None:
    """Two replicas on one Redis get every delivery: one rolls back, one answers duplicate."""
    chain = make_chain("replicas")
    first, second = chain.serve(), chain.serve()
    chain.route(first, second)
    chain.breach()
    delivery = chain.wait_deliveries(1, status=200)[0]
    assert delivery.statuses == [200, 200], delivery.answers
    answers = [trigger_answer(delivery, 0), trigger_answer(delivery, 1)]
    decisions = sorted((a["decision"], a["reason"]) for a in answers)
    assert decisions == [("rollback", "passed"), ("skipped", "duplicate")], answers
    assert answers[0]["rollback_id"] == answers[1]["rollback_id"]
    rollback_id = answers[0]["rollback_id"]
    chain.wait_state(rollback_id, ("completed",))
    chain.wait_deliveries(2, timeout=20)  # a repeat reaches both processes too
    assert len(chain.new_commits()) == 1
    for served in (first, second):
        assert [r["id"] for r in chain.history(served)] == [rollback_id]


def test_a_blackout_silence_holds_the_rollback_back(make_chain: Callable[..., Chain]) -> None:
    """`blackout create` silences the service's triggers: Alertmanager delivers nothing."""
    chain = make_chain("blackout")
    chain.route(chain.serve())
    made = chain.cli(
        "blackout",
        "create",
        "--duration",
        "10m",
        "--comment",
        "e2e freeze",
        "--service",
        chain.service,
        "--created-by",
        "e2e",
    )
    assert made.returncode == 0, made.stderr
    try:
        chain.breach()
        chain.wait_firing("TriggerEmergencyRollback")
        suppressed = wait_until(
            "Alertmanager to hold the trigger as suppressed",
            lambda: [
                a
                for a in chain.stack.alertmanager.alerts(service=chain.service)
                if a["status"]["state"] == "suppressed" and a["status"]["silencedBy"]
            ],
            15,
        )
        assert suppressed[0]["labels"]["alertname"] == "TriggerEmergencyRollback"
        time.sleep(4)  # several group intervals (1s) and repeat intervals (3s)
        assert chain.deliveries() == []
        assert chain.new_commits() == []
        assert chain.history() == []
    finally:
        silence_id = made.stdout.split("created blackout ", 1)[-1].split()[0]
        ended = chain.cli("blackout", "end", silence_id)
        assert ended.returncode == 0, ended.stderr


def test_redis_down_answers_503_and_rolls_back_once_it_returns(
    make_chain: Callable[..., Chain],
) -> None:
    """Without Redis: 503 (Alertmanager retries), nothing done; with it back: one rollback."""
    redis = RedisServer().start()
    try:
        chain = make_chain("redis")
        served = chain.serve(REDIS_URL=redis.redis_url)
        chain.route(served)
        port = redis.port
        redis.halt()
        chain.breach()
        refused = chain.wait_deliveries(1, status=503)
        assert refused[0].answers[0] == {"error": refused[0].answers[0]["error"]}
        assert requests.get(served.url + "/readyz", timeout=5).status_code == 503
        assert chain.new_commits() == []
        assert chain.app.deployed == chain.bad
        redis.start(port)
        answer = trigger_answer(chain.wait_deliveries(1, status=200, timeout=40)[0], 0)
        assert answer["decision"] == "rollback", answer
        chain.wait_state(answer["rollback_id"], ("completed",))
        assert requests.get(served.url + "/readyz", timeout=5).status_code == 200
        assert len(chain.new_commits()) == 1
    finally:
        redis.stop()


def test_argo_cd_failing_fires_rollback_failed_and_pages(make_chain: Callable[..., Chain]) -> None:
    """The sync operation fails: the record fails at validation, RollbackFailed fires, PD pages."""
    chain = make_chain("argofail", operation_outcome="Failed")
    chain.route(chain.serve())
    chain.breach()
    answer = chain.first_answer()
    assert answer["decision"] == "rollback", answer
    record = chain.wait_state(answer["rollback_id"], ("completed", "failed", "interrupted"))
    assert record["state"] == "failed", record
    failed = [s for s in record["stages"] if s["ok"] is False]
    assert failed and failed[-1]["error"], record["stages"]
    chain.wait_firing("RollbackFailed")
    assert not chain.stack.prometheus.firing("RollbackCompleted", service=chain.service)

    def critical_retrigger() -> list[dict[str, object]] | None:
        events = [
            e
            for e in chain.pagerduty.events
            if e.get("dedup_key") == answer["rollback_id"] and e["event_action"] == "trigger"
        ]
        return events if len(events) >= 2 else None

    events = wait_until("PagerDuty trigger and failure re-trigger", critical_retrigger, 10)
    assert events[-1]["payload"]["severity"] == "critical"
    assert "fail" in str(events[-1]["payload"]["summary"]).lower()
