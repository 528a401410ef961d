"""Redis helpers for tests: a round-trip counter and records stored as the receiver stores them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import redis as redis_lib

from receiver.state.history import RollbackRecord, State
from receiver.state.store import Store

_ids = itertools.count(1)


def add_record(store: Store, service: str, state: str) -> RollbackRecord:
    number = next(_ids)
    record = RollbackRecord(
        id=f"rb-20261201T000000Z-{number:08x}",
        service=service,
        namespace="production",
        tier="critical",
        decision="skipped" if state == State.SKIPPED else "rollback",
        reason="cooldown" if state == State.SKIPPED else "passed",
        state=state,
        trigger={"labels": {"service": service}},
        created_at="2026-12-01T00:00:00.000Z",
    )
    store.create_record(record)
    return record


class RoundTrips:
    """Counts the writes to Redis's socket: one per command, one per pipeline."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        send = redis_lib.connection.AbstractConnection.send_packed_command

        def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            send(conn, command, check_health)

        monkeypatch.setattr(redis_lib.connection.AbstractConnection, "send_packed_command", counted)
