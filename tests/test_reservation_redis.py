"""Atomicity on the machine's real Redis: many processes and threads, one rollback each."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import random
import secrets
import threading
import time
from collections import Counter
from typing import Any

import redis as redis_lib

from tests.conftest import REAL_REDIS_URL

SERVICES = [f"svc{i}" for i in range(5)]
EPISODES = ["2026-11-26T10:00:00Z", "2026-11-26T10:05:00Z", "2026-11-26T10:10:00Z"]
ENV = {
    "BLACKOUT_WINDOWS": "none",
    "ROLLBACK_MODE": "gitops",
    "COOLDOWN_MINUTES": "0",
    "MAX_ROLLBACKS_PER_HOUR": "2",
    "MAX_ROLLBACKS_PER_DAY": "3",
    "MAX_CONCURRENT_ROLLBACKS": "3",
    "LOCK_LEASE_SECONDS": "30",
    "STABILIZATION_SECONDS": "0",
}

# KEYS: 1 running counter, 2 max-seen key; returns the new running count
_ENTER = """
local n = redis.call('INCR', KEYS[1])
local m = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > m then redis.call('SET', KEYS[2], n) end
return n
"""


THREADS = 4
PROCESSES = 2
ROUNDS = 3


def stable_fingerprint(service: str) -> str:
    """The same fingerprint in every process (`hash()` is salted per process)."""
    return hashlib.sha256(service.encode()).hexdigest()[:16]


def _worker(prefix: str, config: str, out: Any, start: Any) -> None:
    """One OS process: an engine on the real Redis, four threads firing every alert."""
    from receiver.app import build_engine
    from receiver.config import Settings
    from receiver.intake.payload import parse_alert
    from receiver.state.store import Store
    from tests.support import Backend, Collector, alert

    client = redis_lib.Redis.from_url(REAL_REDIS_URL, decode_responses=True)
    enter = client.register_script(_ENTER)

    class CountingBackend(Backend):
        def factory(self, settings: Any, target: Any, mode: str) -> Any:
            actions = super().factory(settings, target, mode)
            original = actions[0].execute
            original_inspect = actions[0].inspect

            def inspect(job: Any) -> Any:
                # A slow read before the reservation: other deliveries of the same episode
                # reach the script after this one's rollback already released its lock.
                time.sleep(random.uniform(0, 0.08))
                return original_inspect(job)

            def execute(job: Any, ctx: Any) -> None:
                enter(keys=[prefix + "test:running", prefix + "test:max"])
                try:
                    time.sleep(0.02)
                    original(job, ctx)
                finally:
                    client.decr(prefix + "test:running")

            actions[0].execute = execute  # type: ignore[method-assign]
            actions[0].inspect = inspect  # type: ignore[method-assign]
            return actions

    settings = Settings.from_env(
        {**ENV, "REDIS_URL": REAL_REDIS_URL, "REDIS_PREFIX": prefix, "ROLLBACK_CONFIG": config}
    )
    engine = build_engine(
        settings,
        store=Store.from_settings(settings),
        build_actions=CountingBackend().factory,
        tell=Collector(),
    )
    results: list[tuple[str, str, str, str | None]] = []
    lock = threading.Lock()

    def fire() -> None:
        # Every thread of every process starts each round together; between rounds the
        # rollbacks finish and release their locks, so only the episode record stops a
        # repeat delivery in a later round from rolling back a second time.
        for _round in range(ROUNDS):
            start.wait(60)
            for starts_at in EPISODES:
                for service in SERVICES:
                    fingerprint = stable_fingerprint(service)
                    raw = alert(service, fingerprint=fingerprint, starts_at=starts_at)
                    outcome = engine.handle_alert(parse_alert(raw, 0))
                    with lock:
                        results.append((service, starts_at, outcome.reason, outcome.rollback_id))
            engine.wait_idle(30)

    threads = [threading.Thread(target=fire) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    engine.wait_idle(30)
    engine.shutdown(5)
    out.put(results)


def test_processes_and_threads_racing_get_one_rollback_per_episode_and_limits_hold(
    real_redis: redis_lib.Redis, tmp_path: Any
) -> None:
    prefix = f"race{secrets.token_hex(3)}:"
    config = tmp_path / "services.yml"
    config.write_text(
        "services:\n"
        + "".join(f"  {s}: {{gitops: {{repo: acme/gitops, path: k8s/{s}}}}}\n" for s in SERVICES)
    )
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = ctx.Barrier(PROCESSES * THREADS)
    procs = [
        ctx.Process(target=_worker, args=(prefix, str(config), out, start))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    per_process = [out.get(timeout=90) for _ in procs]
    results = [row for rows in per_process for row in rows]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    assert len(results) == ROUNDS * PROCESSES * THREADS * len(EPISODES) * len(SERVICES)
    started = [(s, e, rid) for s, e, reason, rid in results if reason == "passed"]
    per_episode = Counter((s, e) for s, e, _ in started)
    assert all(n == 1 for n in per_episode.values()), per_episode
    per_service = Counter(s for s, _e, _ in started)
    assert all(n <= 2 for n in per_service.values()), per_service  # MAX_ROLLBACKS_PER_HOUR
    # Every delivery of a started episode answers with that episode's one rollback id.
    ids = {(s, e): rid for s, e, rid in started}
    for s, e, reason, rid in results:
        if reason == "duplicate":
            assert rid == ids.get((s, e), rid)
    # The processes really raced the same episodes: one answered `duplicate` for a rollback
    # that the other process started.
    started_in = [
        {rid for _s, _e, reason, rid in rows if reason == "passed"} for rows in per_process
    ]
    dup_in = [
        {rid for _s, _e, reason, rid in rows if reason == "duplicate"} for rows in per_process
    ]
    assert (dup_in[0] & started_in[1]) or (dup_in[1] & started_in[0]), "no cross-process race"
    # Never more than MAX_CONCURRENT_ROLLBACKS executing at once, across both processes.
    assert 1 <= int(real_redis.get(prefix + "test:max") or 0) <= 3
    reasons = Counter(reason for _s, _e, reason, _rid in results)
    assert reasons["passed"] == len(started) >= len(SERVICES) - 2
    assert set(reasons) <= {"passed", "duplicate", "locked", "rate_limit_hour", "global_limit"}
    # Every lock was released by its owner.
    assert real_redis.keys(prefix + "lock:*") == []
