"""Deciding an alert costs a fixed, small number of Redis round trips (issue 15, item 3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from receiver.intake.payload import parse_alert
from receiver.pipeline import Engine
from receiver.state.store import Store
from tests.redis_support import RoundTrips, add_record
from tests.support import alert


def test_a_first_delivery_costs_three_round_trips_and_a_repeat_one(
    real_store: Store, make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Episode owner, revision memory, reservation; a repeat only asks for the episode's owner."""
    engine = make_engine(store=real_store, DRY_RUN="true")
    warm = engine.handle_delivery([parse_alert(alert(starts_at="2026-11-26T11:00:00Z"), 0)])
    assert warm[0].reason == "dry_run"  # the scripts are registered on the server now
    trips = RoundTrips(monkeypatch)
    (first,) = engine.handle_delivery([parse_alert(alert(), 0)])
    assert first.reason == "dry_run" and trips.count == 3
    trips.count = 0
    (repeat,) = engine.handle_delivery([parse_alert(alert(), 0)])
    assert repeat.reason == "duplicate" and repeat.rollback_id == first.rollback_id
    assert trips.count == 1


@pytest.mark.parametrize("kind", ["fake_store", "real_store"])
def test_an_episode_whose_record_aged_out_has_no_owner(
    kind: str, request: pytest.FixtureRequest
) -> None:
    store: Store = request.getfixturevalue(kind)
    record = add_record(store, "api", "skipped")
    store.client.set(store.key("episode", "api|e1"), record.id)
    assert store.episode_owner("api|e1") == record.id
    assert store.episode_owner("api|never") is None
    store.client.delete(store.key("record", record.id))
    assert store.episode_owner("api|e1") is None
