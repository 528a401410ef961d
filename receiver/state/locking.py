"""The store's reservation side: the reservation, and the lock record's renew/release/reap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from receiver.state.reservation import ReserveResult, Scripts, decode

T = TypeVar("T")
EPISODE_TTL_SECONDS = 7 * 86400


@dataclass(frozen=True)
class SafetyTarget:
    """One safety target of a rollback: its id, and for a folder its repo@branch and path."""

    id: str
    scope: str = ""  # repo@branch of a manifest folder; "" = an exact id (an Argo CD app)
    path: str = ""


@dataclass(frozen=True)
class NewRecord:
    """A record the reservation creates with itself, and its approval/veto deadlines."""

    record_json: str
    state: str
    expires_in: float | None = None  # seconds to the approval expiry
    veto_in: float | None = None  # seconds to the emergency veto deadline


class Locking:
    """Reservation and lock-record methods of `Store` (which provides client, key, guarded)."""

    client: redis.Redis
    prefix: str
    retention_seconds: int
    max_records: int
    key: Callable[..., str]
    guarded: Callable[[], AbstractContextManager[None]]
    _call: Callable[[Callable[[], Any]], Any]

    @property
    def scripts(self) -> Scripts:
        raise NotImplementedError  # Store registers them on its client

    def now(self) -> float:
        """Redis's clock, in seconds: the one clock every replica compares against."""
        seconds, micros = self._call(lambda: self.client.time())
        return int(seconds) + int(micros) / 1e6

    def episode_owner_state(self, episode: str) -> tuple[str | None, str | None]:
        """The rollback id that claimed an episode and its record's state, in one round trip;
        Nones when none did or its record is gone."""
        keys = [self.key("episode", episode)]
        with self.guarded():
            reply = self.scripts.episode(keys=keys, args=[self.prefix])
        if not decode(reply[0]):
            return None, None
        return decode(reply[0]), decode(reply[1]) or None

    def reserve(
        self,
        *,
        service: str,
        rollback_id: str,
        episode: str | None,
        mode: str,
        force: bool,
        lease_seconds: int,
        cooldown_minutes: int,
        max_hour: int,
        max_day: int,
        max_concurrent: int,
        global_window_seconds: float = 0.0,
        targets: Sequence[SafetyTarget] = (),
        record: NewRecord | None = None,
        expect_state: str = "",
        new_state: str = "",
    ) -> ReserveResult:
        """The atomic reservation (RESERVE_SCRIPT): dedupe, locks, windows, limits, record."""
        keys = [
            self.key("episode", episode or "-"),
            self.key("lock", service),
            self.key("locks"),
            self.key("starts", service),
            self.key("running"),
            self.key("rstate", rollback_id),
            self.key("record", rollback_id),
            self.key("history"),
            self.key("history", service),
            self.key("transitions", service),
            self.key("services"),
            self.key("gstarts"),
            self.key("pending"),
            self.key("veto"),
            self.key("locktargets"),
        ]
        optional = (record.expires_in, record.veto_in) if record else (None, None)
        args: list[str | int | float] = [
            rollback_id,
            lease_seconds * 1000,
            cooldown_minutes * 60000,
            max_hour,
            max_day,
            max_concurrent,
            EPISODE_TTL_SECONDS,
            service,
            mode,
            "1" if episode else "0",
            "1" if force else "0",
            expect_state,
            record.state if record else new_state,
            self.prefix,
            int(global_window_seconds * 1000),
            record.record_json if record else "",
            self.retention_seconds,
            self.max_records,
            *("" if value is None else f"{value:.3f}" for value in optional),
        ]
        for target in targets:
            args.extend((target.id, target.scope, target.path))
        with self.guarded():
            reason, detail, blocking = self.scripts.reserve(keys=keys, args=args)
        return ReserveResult(decode(reason), decode(detail), decode(blocking))

    def _lock_keys(self, service: str) -> list[str]:
        return [
            self.key("lock", service),
            self.key("locks"),
            self.key("running"),
            self.key("locktargets"),
        ]

    def renew(self, service: str, owner: str, lease_seconds: int) -> bool:
        """Renew the lease of the service and every target of its lock record."""
        args: list[str | int] = [owner, service, lease_seconds * 1000, self.prefix]
        with self.guarded():
            result = self.scripts.renew(keys=self._lock_keys(service), args=args)
        return int(result) == 1

    def owns(self, service: str, owner: str) -> bool:
        return decode(self._call(lambda: self.client.get(self.key("lock", service)))) == owner

    def release(self, service: str, owner: str) -> int:
        """Release the lock record (service and targets) if `owner` holds it."""
        args = [owner, service, self.prefix]
        with self.guarded():
            return int(self.scripts.release(keys=self._lock_keys(service), args=args))

    def lock_owner(self, service: str) -> str | None:
        return decode(self._call(lambda: self.client.get(self.key("lock", service)))) or None

    def reap_expired(self) -> list[tuple[str, str]]:
        """Take over every lease that expired mid-run; each is returned to exactly one caller."""
        with self.guarded():
            due = self.client.zrangebyscore(self.key("locks"), "-inf", int(self.now() * 1000))
            reaped = []
            for raw in due:
                service = decode(raw)
                args = [service, self.prefix]
                owner = self.scripts.reap(keys=self._lock_keys(service), args=args)
                if owner is not None and owner is not False:
                    reaped.append((service, decode(owner)))
        return reaped

    def held_locks(self) -> int:
        now_ms = int(self.now() * 1000)
        return int(self._call(lambda: self.client.zcount(self.key("locks"), f"({now_ms}", "+inf")))

    def global_count(self, window_seconds: float) -> int:
        """What the global limit counts (read only): rollbacks holding a lock or started
        within the window, each once — the reservation script's count, for explain."""
        now_ms = int(self.now() * 1000)
        since = f"({now_ms - int(window_seconds * 1000)}"

        def read() -> int:
            started = set(self.client.zrangebyscore(self.key("gstarts"), since, "+inf"))
            holding = [
                decode(m)
                for m in self.client.zrangebyscore(self.key("locks"), f"({now_ms}", "+inf")
            ]
            owners = self.client.hmget(self.key("running"), holding) if holding else []
            for service, owner in zip(holding, owners, strict=True):
                started.add(owner or f"service:{service}")
            return len(started)

        return int(self._call(read))
