"""Skipped episodes: a repeat skipped for the same reason updates its record, never claims.

KEYS: `skip:<episode>` -> "<rollback id> <reason>", kept as long as the record. A skip is no
claim on the episode (the reservation's episode key is untouched), so once the blocking
condition is gone the next repeat is decided afresh; this key only names the record that
a repeat with the same reason updates instead of writing a new one.
"""

from __future__ import annotations

import logging

from receiver.state.history import RollbackRecord, iso
from receiver.state.reservation import decode
from receiver.state.store import Store

log = logging.getLogger("receiver.pipeline")


def _key(store: Store, episode: str) -> str:
    return store.key("skip", episode)


def repeat_of(store: Store, episode: str, reason: str) -> RollbackRecord | None:
    """The record of this episode's earlier skip with the same reason, if it is still kept."""
    with store.guarded():
        value = store.client.get(_key(store, episode))
    if not value:
        return None
    rollback_id, _, earlier = decode(value).partition(" ")
    if earlier != reason:
        return None
    record = store.get_record(rollback_id)
    return record if record is not None and record.state == "skipped" else None


def count_repeat(store: Store, record: RollbackRecord) -> RollbackRecord:
    """One more delivery or evaluation of a still-skipped episode: `repeats`, `last_seen_at`."""
    record.repeats += 1
    record.last_seen_at = iso()
    store.save_record(record, expect=("skipped",))
    return record


def remember_skip(store: Store, episode: str, record: RollbackRecord) -> None:
    """Name the record a repeat of this episode with the same reason updates."""
    with store.guarded():
        store.client.set(
            _key(store, episode), f"{record.id} {record.reason}", ex=store.retention_seconds
        )


def record_skip(
    store: Store, record: RollbackRecord, episode: str | None, indexed_as: str | None = None
) -> RollbackRecord:
    """Write a skip, or count it on the episode's earlier record with the same reason."""
    if episode is not None:
        earlier = repeat_of(store, episode, record.reason)
        if earlier is not None:
            log.info(
                "rollback still skipped",
                extra={
                    "rollback_id": earlier.id,
                    "service": record.service,
                    "reason": record.reason,
                },
            )
            return count_repeat(store, earlier)
    store.create_record(record, indexed_as)
    if episode is not None:
        remember_skip(store, episode, record)
    return record
