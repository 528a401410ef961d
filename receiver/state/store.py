"""The state store: Redis (or an embedded in-process stand-in) behind one small class.

Every Redis error becomes `StoreUnavailable`, which the webhook answers with
503 so Alertmanager retries: with no state there is no safe decision.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import unquote

import redis
from redis.credentials import CredentialProvider

from receiver.config import Settings
from receiver.errors import StoreUnavailable
from receiver.secrets import Secret
from receiver.state.history import FINAL_STATES, RollbackRecord, State
from receiver.state.locking import Locking
from receiver.state.reservation import Scripts, decode

log = logging.getLogger("receiver.state")
T = TypeVar("T")

GAUGE_STATES = (State.RUNNING, State.COMPLETED, State.FAILED, State.INTERRUPTED)


def client_options() -> dict[str, Any]:
    """Short timeouts and few retries: Alertmanager retries a 503 itself, so fail fast."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return {
        "decode_responses": True,
        "socket_timeout": 2.0,
        "socket_connect_timeout": 1.0,
        "health_check_interval": 15,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
    }


class SecretCredentials(CredentialProvider):
    """REDIS_PASSWORD, read for each new connection so a rotated REDIS_PASSWORD_FILE applies."""

    def __init__(self, secret: Secret, username: str | None = None) -> None:
        self.secret = secret
        self.username = username

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        password = self.secret.get() or ""
        return (self.username, password) if self.username else (password,)


def _without_username(url: str | None) -> tuple[str | None, str | None]:
    """REDIS_URL without its `user@` (given to the credentials instead), and that user."""
    match = re.match(r"^(?P<scheme>[a-z]+://)(?P<user>[^:@/]*)@(?P<rest>.*)$", url or "")
    if match is None:
        return url, None
    return match.group("scheme") + match.group("rest"), unquote(match.group("user")) or None


def connect(settings: Settings) -> redis.Redis:
    """A client for REDIS_URL, through Sentinel when REDIS_SENTINELS is set, else embedded."""
    options = client_options()
    url = settings.redis_url
    if settings.redis_password:
        url, username = _without_username(url)
        options["credential_provider"] = SecretCredentials(settings.redis_password, username)
    if settings.redis_sentinels:
        from redis.sentinel import Sentinel

        ssl = bool(settings.redis_url and settings.redis_url.startswith("rediss://"))
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.redis_sentinels),
            sentinel_kwargs={"socket_timeout": 2.0},
            ssl=ssl,
            **options,
        )
        master = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_master, **options
        )
        return master  # type: ignore[no-any-return]
    if url:
        return redis.Redis.from_url(url, **options)
    import fakeredis

    return fakeredis.FakeRedis(decode_responses=True)


class Store(Locking):
    """Safety state, history and gauges of the receiver, shared by every replica."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "rollback:",
        retention_days: int = 30,
        max_records: int = 1000,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retention_seconds = retention_days * 86400
        self.max_records = max_records
        self._scripts: Scripts | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(
            connect(settings),
            settings.redis_prefix,
            settings.history_retention_days,
            settings.history_max_records,
        )

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            self._scripts = Scripts(self.client)
        return self._scripts

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"state store unreachable: {exc.__class__.__name__}") from None

    @contextmanager
    def guarded(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise StoreUnavailable(f"state store unreachable: {exc.__class__.__name__}") from None

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    # -- records -----------------------------------------------------------------------

    def create_record(self, record: RollbackRecord, indexed_as: str | None = None) -> None:
        """Store and index a new record, trimming old ones; `indexed_as` names a shared index."""
        created = self.now()
        service_index = indexed_as or record.service
        with self.guarded():
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self.key("record", record.id), record.to_json(), ex=self.retention_seconds)
            pipe.set(self.key("rstate", record.id), record.state, ex=self.retention_seconds)
            for index in (self.key("history"), self.key("history", service_index)):
                pipe.zadd(index, {record.id: created})
                pipe.zremrangebyscore(index, "-inf", created - self.retention_seconds)
                pipe.zremrangebyrank(index, 0, -self.max_records - 1)
            if indexed_as is None:
                pipe.sadd(self.key("services"), record.service)
            pipe.execute()

    def get_record(self, rollback_id: str) -> RollbackRecord | None:
        text = self._call(lambda: self.client.get(self.key("record", rollback_id)))
        if not text:
            return None
        state = decode(self._call(lambda: self.client.get(self.key("rstate", rollback_id))))
        return self.record_from(decode(text), state)

    @staticmethod
    def record_from(text: str, state: str) -> RollbackRecord:
        """A stored record; its state is the record-state key's where one was written."""
        record = RollbackRecord.from_json(text)
        if state:
            record.state = state
        return record

    def record_state(self, rollback_id: str) -> str | None:
        return decode(self._call(lambda: self.client.get(self.key("rstate", rollback_id)))) or None

    def save_record(self, record: RollbackRecord, expect: tuple[str, ...] = ()) -> bool:
        """Write a record if its state is one of `expect` (any when empty); False otherwise."""
        with self.guarded():
            written, _current = self.scripts.transition(
                keys=[self.key("rstate", record.id), self.key("record", record.id)],
                args=[",".join(expect), record.state, record.to_json(), self.retention_seconds],
            )
        return int(written) == 1

    def list_records(
        self, service: str | None = None, limit: int = 50, after: str | None = None
    ) -> list[RollbackRecord]:
        """Newest first; `after`: only records older than that id (a page's cursor)."""
        return list(self.newest_records(service, limit, after))

    def newest_records(
        self, service: str | None = None, limit: int = 50, after: str | None = None
    ) -> Iterator[RollbackRecord]:
        """`list_records`, read one record at a time: a caller that found what it looks for
        stops before reading the rest."""
        index = self.key("history", service) if service else self.key("history")
        rank = -1 if after is None else self._call(lambda: self.client.zrevrank(index, after))
        if rank is None:  # the cursor's record aged out of the history: nothing older is left
            return
        start = int(str(rank)) + 1
        ids = self._call(lambda: self.client.zrevrange(index, start, start + max(limit, 1) - 1))
        for rollback_id in ids:
            record = self.get_record(decode(rollback_id))
            if record is not None:
                yield record

    # -- audit trail -------------------------------------------------------------------

    def add_audit(self, entry: dict[str, Any]) -> None:
        """Append one operator action (newest first), bounded like the history."""
        key = self.key("audit")
        with self.guarded():
            pipe = self.client.pipeline(transaction=True)
            pipe.lpush(key, json.dumps(entry, sort_keys=True))
            pipe.ltrim(key, 0, self.max_records - 1)
            pipe.expire(key, self.retention_seconds)
            pipe.execute()

    def list_audit(self, limit: int = 50) -> list[dict[str, Any]]:
        raw = self._call(lambda: self.client.lrange(self.key("audit"), 0, max(limit, 1) - 1))
        return [json.loads(decode(item)) for item in raw]

    # -- gauges and status ----------------------------------------------------------------

    def mark_transition(self, service: str, state: str) -> None:
        """When the newest rollback of a service entered a state, by Redis's clock."""
        keys = [self.key("transitions", service), self.key("services")]
        fresh = "1" if state == State.RUNNING else "0"
        with self.guarded():
            self.scripts.mark_transition(keys=keys, args=[state, service, fresh])

    def services(self) -> set[str]:
        return self._members(self.key("services"))

    def _members(self, key: str) -> set[str]:
        return {decode(m) for m in self._call(lambda: self.client.smembers(key))}

    def gauges(self, configured: set[str]) -> tuple[dict[str, int], dict[tuple[str, str], float]]:
        """rollback_in_progress and rollback_last_transition_timestamp_seconds, from Redis."""
        with self.guarded():
            known = {decode(m) for m in self.client.smembers(self.key("services"))}
            services = sorted(configured | known)
            pipe = self.client.pipeline(transaction=False)
            for service in services:
                pipe.exists(self.key("lock", service))
                pipe.hgetall(self.key("transitions", service))
            results = pipe.execute()
        in_progress: dict[str, int] = {}
        transitions: dict[tuple[str, str], float] = {}
        for i, service in enumerate(services):
            in_progress[service] = 1 if results[2 * i] else 0
            for state, ts in results[2 * i + 1].items():
                if decode(state) in GAUGE_STATES:
                    transitions[(service, decode(state))] = float(ts)
        return in_progress, transitions

    def window_counts(self, service: str) -> dict[str, Any]:
        now_ms = int(self.now() * 1000)
        key = self.key("starts", service)
        with self.guarded():  # one round trip (status reads it for every service)
            pipe: Any = self.client.pipeline(transaction=False)
            pipe.zcount(key, now_ms - 3600000, "+inf").zcount(key, now_ms - 86400000, "+inf")
            hour, day, last = pipe.zrevrange(key, 0, 0, withscores=True).execute()
        return {
            "hour": int(hour),
            "day": int(day),
            "last_start": float(last[0][1]) / 1000 if last else None,
            "now": now_ms / 1000,  # Redis's clock, to compare the last start with
        }

    # -- approval and once-only ---------------------------------------------------------

    def add_deadline(self, kind: str, rollback_id: str, at: float) -> None:
        self._call(lambda: self.client.zadd(self.key(kind), {rollback_id: at}))

    def remove_deadline(self, kind: str, rollback_id: str) -> None:
        self._call(lambda: self.client.zrem(self.key(kind), rollback_id))

    def due(self, kind: str) -> list[str]:
        """The ids whose deadline of `kind` passed, by Redis's clock."""
        at = self.now()
        return [
            decode(x)
            for x in self._call(lambda: self.client.zrangebyscore(self.key(kind), "-inf", at))
        ]

    def claim_once(self, name: str, ttl_seconds: int) -> bool:
        """True for the first caller only (SET NX EX): one notification per episode."""
        return bool(
            self._call(
                lambda: self.client.set(self.key("once", name), "1", nx=True, ex=ttl_seconds)
            )
        )

    def is_final(self, rollback_id: str) -> bool:
        return (self.record_state(rollback_id) or "") in FINAL_STATES
