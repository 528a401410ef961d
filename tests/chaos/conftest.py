"""Fixtures of the chaos tests: a throwaway redis-server and a Store on it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from receiver.state.store import Store, client_options
from tests.chaos.redis_proc import RedisProcess, redis_process


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    with redis_process() as server:
        yield server


@pytest.fixture
def chaos_store(redis_server: RedisProcess) -> Iterator[Store]:
    client = redis.Redis.from_url(redis_server.url, **client_options())
    yield Store(client, prefix=f"c{secrets.token_hex(3)}:")
    client.close()
