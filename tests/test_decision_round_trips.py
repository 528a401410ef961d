"""Deciding an alert costs a fixed, small number of Redis round trips (issue 15, item 3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from receiver.intake.payload import parse_alert
from receiver.pipeline import Engine
from receiver.state.memory import RevisionMemory
from receiver.state.store import Store
from tests.redis_support import RoundTrips, add_record
from tests.support import alert


def test_a_first_delivery_costs_two_round_trips_and_a_repeat_one(
    real_store: Store, make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Episode owner with the revision memory, then the reservation; a repeat: the owner alone."""
    engine = make_engine(store=real_store, DRY_RUN="true")
    warm = engine.handle_delivery([parse_alert(alert(starts_at="2026-11-26T11:00:00Z"), 0)])
    assert warm[0].reason == "dry_run"  # the scripts are registered on the server now
    trips = RoundTrips(monkeypatch)
    (first,) = engine.handle_delivery([parse_alert(alert(), 0)])
    assert first.reason == "dry_run" and trips.count == 2
    trips.count = 0
    (repeat,) = engine.handle_delivery([parse_alert(alert(), 0)])
    assert repeat.reason == "duplicate" and repeat.rollback_id == first.rollback_id
    assert trips.count == 1
    trips.count = 0  # a resolve asks whether a pending approval waits: owner and state at once
    (resolved,) = engine.handle_delivery([parse_alert(alert(status="resolved"), 0)])
    assert resolved.decision == "ignored" and trips.count == 1


@pytest.mark.parametrize("kind", ["fake_store", "real_store"])
def test_an_episode_whose_record_aged_out_has_no_owner(
    kind: str, request: pytest.FixtureRequest
) -> None:
    store: Store = request.getfixturevalue(kind)
    record = add_record(store, "api", "skipped")
    store.client.set(store.key("episode", "api|e1"), record.id)
    assert store.episode_owner_state("api|e1") == (record.id, "skipped")
    assert store.episode_owner_state("api|never") == (None, None)
    store.client.delete(store.key("record", record.id))
    assert store.episode_owner_state("api|e1") == (None, None)


@pytest.mark.parametrize("kind", ["fake_store", "real_store"])
def test_a_new_episode_reads_the_memory_its_repeat_does_not(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """The duplicate test and the revision memory in one script: the same memory `recall`
    reads, for a new episode only (and for one whose owner's record aged out)."""
    store: Store = request.getfixturevalue(kind)
    memory = RevisionMemory(store)
    names = ("api", "git:repo@main:k8s/api")
    memory.remember(names, "bad1", "good1")
    memory.remember(names[1:], "bad2", None)
    memory.mark(names[:1])
    owner, recalled = memory.owner_or_recall("api|e1", names)
    assert owner is None and recalled == memory.recall(names)
    assert recalled.bad_revisions == {"bad1", "bad2"} and recalled.restored == {"good1"}
    assert recalled.unmarked == ("git:repo@main:k8s/api",)
    record = add_record(store, "api", "completed")
    store.client.set(store.key("episode", "api|e1"), record.id)
    assert memory.owner_or_recall("api|e1", names) == (record.id, None)
    store.client.delete(store.key("record", record.id))
    assert memory.owner_or_recall("api|e1", names) == (None, recalled)
    assert memory.owner_or_recall("api|e2", ()) == (None, memory.recall(()))
