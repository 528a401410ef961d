"""REDIS_PASSWORD: the Redis client authenticates with it against a real protected Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from receiver.config import Settings
from receiver.state.store import connect
from tests.e2e.stack import RedisServer

PASSWORD = 'pä"ss\\word-42'


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir=tmp_path / "redis").start()
    try:
        redis.Redis(port=server.port).config_set("requirepass", PASSWORD)
        yield server
    finally:
        server.stop()


def test_the_client_authenticates_with_redis_password_from_a_file(
    protected_redis: RedisServer, tmp_path: Path
) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    env = {"REDIS_URL": protected_redis.redis_url, "REDIS_PASSWORD_FILE": str(secret)}
    client = connect(Settings.from_env(env))
    assert client.ping() is True
    client.close()


def test_without_redis_password_the_protected_redis_refuses_the_client(
    protected_redis: RedisServer,
) -> None:
    client = connect(Settings.from_env({"REDIS_URL": protected_redis.redis_url}))
    with pytest.raises(redis.AuthenticationError):
        client.ping()
    client.close()


def test_a_rotated_redis_password_file_is_used_for_the_next_connection(
    protected_redis: RedisServer, tmp_path: Path
) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD, encoding="utf-8")
    env = {"REDIS_URL": protected_redis.redis_url, "REDIS_PASSWORD_FILE": str(secret)}
    client = connect(Settings.from_env(env))
    assert client.ping() is True
    client.config_set("requirepass", "rotated-password-2")
    secret.write_text("rotated-password-2", encoding="utf-8")
    os.utime(secret, (time.time() + 5, time.time() + 5))
    client.connection_pool.disconnect()  # a new connection must log in with the new password
    assert client.ping() is True
    client.close()


def test_a_username_in_redis_url_logs_in_as_that_acl_user_with_redis_password(
    protected_redis: RedisServer,
) -> None:
    admin = redis.Redis(port=protected_redis.port, password=PASSWORD)
    admin.acl_setuser(
        "ops", enabled=True, passwords=["+ops-password-3"], keys="*", commands=["+@all"]
    )
    admin.close()
    url = protected_redis.redis_url.replace("redis://", "redis://ops@")
    client = connect(Settings.from_env({"REDIS_URL": url, "REDIS_PASSWORD": "ops-password-3"}))
    assert client.ping() is True and client.acl_whoami() == "ops"
    client.close()
