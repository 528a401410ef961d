"""A repeat of a skipped episode updates its record; a skip never claims the episode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from receiver.app import create_app
from receiver.pipeline import Engine
from receiver.state.store import Store
from tests.support import Backend, alert, payload

ALL_DAY = "Mon-Sun 00:00-23:59 UTC"
ADMIN = {"Authorization": "Bearer admin-secret-token"}


def deliver(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    answer = client.post("/webhook", json=body)
    assert answer.status_code == 200, answer.get_json()
    (first,) = answer.get_json()["alerts"]
    return first  # type: ignore[no-any-return]


def test_repeats_skipped_for_the_same_reason_update_one_record(
    make_engine: Callable[..., Engine], fake_store: Store
) -> None:
    engine = make_engine(BLACKOUT_WINDOWS=ALL_DAY)
    answers = [deliver(engine, payload(alert())) for _ in range(4)]
    assert {(a["decision"], a["reason"]) for a in answers} == {("skipped", "blackout")}
    assert len({a["rollback_id"] for a in answers}) == 1
    (record,) = fake_store.list_records()
    assert record.id == answers[0]["rollback_id"]
    assert record.repeats == 3 and record.last_seen_at is not None
    assert record.last_seen_at >= record.created_at


def test_a_repeat_skipped_for_another_reason_gets_its_own_record(
    make_engine: Callable[..., Engine], fake_store: Store
) -> None:
    first = deliver(make_engine(BLACKOUT_WINDOWS=ALL_DAY), payload(alert()))
    second = deliver(make_engine(ROLLBACK_ENABLED="false"), payload(alert()))
    assert (first["reason"], second["reason"]) == ("blackout", "disabled")
    assert first["rollback_id"] != second["rollback_id"]
    assert len(fake_store.list_records()) == 2


def test_once_the_blackout_is_over_the_next_repeat_is_decided_afresh(
    make_engine: Callable[..., Engine], fake_store: Store, backend: Backend
) -> None:
    held = make_engine(BLACKOUT_WINDOWS=ALL_DAY)
    skipped = deliver(held, payload(alert()))
    deliver(held, payload(alert()))
    after = make_engine()  # another replica, outside any blackout: same store, same episode
    rolled = deliver(after, payload(alert()))
    assert (rolled["decision"], rolled["reason"]) == ("rollback", "passed")
    assert rolled["rollback_id"] != skipped["rollback_id"]
    assert after.wait_idle(10)
    assert backend.executed() == [rolled["rollback_id"]]
    client = create_app(after.settings, engine=after, start_sweeper=False).test_client()
    deliver(held, payload(alert(starts_at="2026-11-26T14:00:00Z")))  # a newer skip
    (status,) = client.get("/api/v1/status?service=api", headers=ADMIN).get_json()["services"]
    assert status["last_rollback"]["id"] == rolled["rollback_id"]
    assert status["last_rollback"]["state"] == "completed"
    assert status["last_skip"]["reason"] == "blackout"
    assert status["last_skip"]["id"] not in (skipped["rollback_id"], rolled["rollback_id"])


def test_manual_refusals_are_not_folded_into_earlier_records(
    make_engine: Callable[..., Engine], fake_store: Store
) -> None:
    engine = make_engine()
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    assert (
        client.post("/api/v1/rollbacks", headers=ADMIN, json={"service": "api"}).status_code == 202
    )
    assert engine.wait_idle(10)
    for _ in range(2):
        refused = client.post("/api/v1/rollbacks", headers=ADMIN, json={"service": "api"})
        assert refused.status_code == 409 and "cooldown" in refused.get_json()["error"]
    assert len(fake_store.list_records()) == 3


def test_repeats_update_one_record_in_the_real_redis_too(
    make_engine: Callable[..., Engine], real_store: Store
) -> None:
    engine = make_engine(store=real_store, BLACKOUT_WINDOWS=ALL_DAY)
    ids = {deliver(engine, payload(alert()))["rollback_id"] for _ in range(3)}
    (record,) = real_store.list_records()
    assert ids == {record.id} and record.repeats == 2
