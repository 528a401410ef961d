"""Chaos fixtures: a throwaway redis-server per test (tests/chaos/redis_proc.py), a Store on it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from receiver.state.store import Store, client_options
from tests.chaos.redis_proc import RedisProcess


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def persistent_redis_proc(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path, persistent=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_proc: RedisProcess) -> RedisProcess:
    """The same throwaway server, under the name the runner's chaos tests use."""
    return redis_proc


@pytest.fixture
def chaos_store(redis_server: RedisProcess) -> Iterator[Store]:
    client = redis.Redis.from_url(redis_server.url, **client_options())
    yield Store(client, prefix=f"c{secrets.token_hex(3)}:")
    client.close()
