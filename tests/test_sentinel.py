"""REDIS_SENTINELS: the receiver finds the Redis master through a real Redis Sentinel."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from receiver.config import Settings
from receiver.state.store import Store
from tests.e2e.stack import RedisServer
from tests.procs import free_port


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[RedisServer, int]]:
    master = RedisServer(workdir=tmp_path / "master").start()
    port = free_port()
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its own configuration file
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
    )
    log = (tmp_path / "sentinel.log").open("wb")
    proc = subprocess.Popen(
        ["redis-server", str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        client = redis_lib.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
        for _ in range(100):  # bounded: until Sentinel knows the master
            try:
                if client.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster"):
                    break
            except redis_lib.RedisError:
                pass
            time.sleep(0.05)
        client.close()
        yield master, port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        master.stop()


def test_the_store_reserves_on_the_master_that_sentinel_names(
    sentinel: tuple[RedisServer, int],
) -> None:
    master, port = sentinel
    settings = Settings.from_env(
        {"REDIS_SENTINELS": f"127.0.0.1:{port}", "REDIS_SENTINEL_MASTER": "mymaster"}
    )
    assert not settings.embedded_store
    store = Store.from_settings(settings)
    assert store.ping()
    result = store.reserve(
        service="api",
        rollback_id="rb-s1",
        episode="fp:t:emergency",
        mode="reserve",
        force=False,
        lease_seconds=30,
        cooldown_minutes=60,
        max_hour=1,
        max_day=3,
        max_concurrent=3,
    )
    assert result.ok
    direct = redis_lib.Redis.from_url(master.redis_url, decode_responses=True)
    assert direct.get("rollback:lock:api") == "rb-s1"
    assert direct.get("rollback:episode:fp:t:emergency") == "rb-s1"
    direct.close()
    store.client.close()


def test_an_unknown_master_name_makes_the_store_unavailable(
    sentinel: tuple[RedisServer, int],
) -> None:
    _master, port = sentinel
    settings = Settings.from_env(
        {"REDIS_SENTINELS": f"127.0.0.1:{port}", "REDIS_SENTINEL_MASTER": "nope"}
    )
    store = Store.from_settings(settings)
    assert store.ping() is False
    from receiver.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable):
        store.episode_owner_state("x")
