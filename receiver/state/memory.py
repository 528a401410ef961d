"""Revision memory per service and per safety target, and the marker that proves Redis kept it.

Keys (under REDIS_PREFIX), each `<name>` a service or a safety target id
(`argocd:<app>`, `git:<repo>@<branch>:<path>`):

    badrevs:<name>   set of revisions the receiver rolled back from
    restored:<name>  set of revisions the receiver rolled back to
    memory:<name>    the marker: when Redis started remembering <name> (written with its first
                     rollback, or by a re-derivation); missing means Redis lost its data
    starts:<name>    the reservation's start times (rollback id -> ms), re-seeded after a loss
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from receiver.state.reservation import decode
from receiver.state.store import Store

DAY_MS = 86400000


@dataclass(frozen=True)
class PastRollback:
    """One rollback the receiver made, as a system of record (git, Argo CD) shows it."""

    at: float  # epoch seconds: commit time or Argo CD deployedAt
    rolled_back_from: str | None
    restored: str | None
    rollback_id: str  # the Rollback-Id trailer, else a stable id of the entry


@dataclass(frozen=True)
class Recall:
    """What Redis remembers of a set of names, read in one round trip."""

    bad_revisions: frozenset[str]  # revisions rolled back from
    restored: frozenset[str]  # revisions rolled back to
    unmarked: tuple[str, ...]  # the names whose marker is missing


def _recall(names: Sequence[str], bad: Any, restored: Any, present: Sequence[Any]) -> Recall:
    return Recall(
        frozenset(decode(m) for m in bad),
        frozenset(decode(m) for m in restored),
        tuple(name for name, there in zip(names, present, strict=True) if not there),
    )


class RevisionMemory:
    """Reads and writes the revision memory and markers of a set of names, through one Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def remember(
        self, names: Sequence[str], rolled_back_from: str | None, restored: str | None
    ) -> None:
        """Add the revisions to every name's memory (idempotent)."""
        store = self.store
        with store.guarded():
            pipe = store.client.pipeline(transaction=True)
            for name in names:
                if rolled_back_from:
                    pipe.sadd(store.key("badrevs", name), rolled_back_from)
                if restored:
                    pipe.sadd(store.key("restored", name), restored)
            pipe.execute()

    def recall(self, names: Sequence[str]) -> Recall:
        """`bad_revisions`, `restored_revisions` and `unmarked` of `names`, in one round trip."""
        if not names:
            return Recall(frozenset(), frozenset(), ())
        store = self.store
        with store.guarded():
            pipe = store.client.pipeline(transaction=False)
            pipe.sunion([store.key("badrevs", name) for name in names])
            pipe.sunion([store.key("restored", name) for name in names])
            for name in names:
                pipe.exists(store.key("memory", name))
            bad, restored, *present = pipe.execute()
        return _recall(names, bad, restored, present)

    def owner_or_recall(
        self, episode: str, names: Sequence[str]
    ) -> tuple[str | None, Recall | None]:
        """The episode's owner (a repeat), else the memory of `names`: one round trip either way.

        A first delivery needs both the duplicate test and, when it passes, the memory; a
        repeat needs only the first, so the script reads the memory only for a new episode.
        """
        store = self.store
        keys = [store.key("episode", episode)]
        for name in names:
            keys += [store.key("badrevs", name), store.key("restored", name)]
            keys.append(store.key("memory", name))
        with store.guarded():
            reply = store.scripts.episode(keys=keys, args=[store.prefix])
        owner = decode(reply[0])
        if owner:
            return owner, None
        if not names:
            return None, Recall(frozenset(), frozenset(), ())
        return None, _recall(names, reply[1], reply[2], reply[3])

    def bad_revisions(self, names: Sequence[str]) -> frozenset[str]:
        return self._union("badrevs", names)

    def restored_revisions(self, names: Sequence[str]) -> frozenset[str]:
        return self._union("restored", names)

    def _union(self, kind: str, names: Sequence[str]) -> frozenset[str]:
        store = self.store
        if not names:
            return frozenset()
        keys = [store.key(kind, name) for name in names]
        with store.guarded():
            members = store.client.sunion(keys)
        return frozenset(decode(m) for m in members)

    def mark(self, names: Iterable[str], at: float | None = None) -> None:
        """Write the marker of every name that has none (SET NX, no expiry)."""
        store = self.store
        stamp = f"{time.time() if at is None else at:.3f}"
        with store.guarded():
            pipe = store.client.pipeline(transaction=False)
            for name in names:
                pipe.set(store.key("memory", name), stamp, nx=True)
            pipe.execute()

    def unmarked(self, names: Sequence[str]) -> list[str]:
        """The names whose marker is missing: Redis holds no memory for them."""
        store = self.store
        with store.guarded():
            pipe = store.client.pipeline(transaction=False)
            for name in names:
                pipe.exists(store.key("memory", name))
            present = pipe.execute()
        return [name for name, there in zip(names, present, strict=True) if not there]

    def reseed(self, names: Sequence[str], past: Sequence[PastRollback]) -> None:
        """Put re-derived rollbacks back: memory, start times of the last day, then markers."""
        store = self.store
        now_ms = int(time.time() * 1000)
        with store.guarded():
            pipe = store.client.pipeline(transaction=True)
            for name in names:
                for rollback in past:
                    if rollback.rolled_back_from:
                        pipe.sadd(store.key("badrevs", name), rollback.rolled_back_from)
                    if rollback.restored:
                        pipe.sadd(store.key("restored", name), rollback.restored)
                    at_ms = int(rollback.at * 1000)
                    if at_ms > now_ms - DAY_MS:
                        pipe.zadd(store.key("starts", name), {rollback.rollback_id: at_ms}, nx=True)
            pipe.execute()
        self.mark(names)
