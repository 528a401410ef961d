"""Fixtures: settings, stores (fake and the machine's real Redis), app, client."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis as redis_lib

from receiver.app import build_engine, create_app
from receiver.config import Settings
from receiver.pipeline import Engine
from receiver.state.store import Store
from tests.redis_dbs import redis_url
from tests.support import Backend, Collector

REAL_REDIS_URL = redis_url("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BASE_ENV = {
    "SERVICE_NAME": "api",
    "GITOPS_REPO": "acme/gitops",
    "GITOPS_PATH": "k8s/api",
    "BLACKOUT_WINDOWS": "none",
    "ROLLBACK_MODE": "gitops",
    "ADMIN_TOKEN": "admin-secret-token",
    "LOCK_LEASE_SECONDS": "30",
    "PROMETHEUS_URL": "http://127.0.0.1:9",
    "STABILIZATION_SECONDS": "0",
}


def shared_fixture(name: str) -> dict[str, Any]:
    """A delivery captured from a real Alertmanager 0.25 (tests/fixtures/alertmanager-0.25)."""
    path = FIXTURES / "alertmanager-0.25" / name
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        merged = {**BASE_ENV, **env}
        return Settings.from_env({k: v for k, v in merged.items() if v is not None})

    return make


@pytest.fixture
def fake_store() -> Store:
    return Store(fakeredis.FakeRedis(decode_responses=True), prefix=f"t{secrets.token_hex(3)}:")


@pytest.fixture
def real_redis() -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(REAL_REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis_lib.RedisError:
        pytest.fail(f"the real Redis at {REAL_REDIS_URL} is not answering: run `make redis`")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def real_store(real_redis: redis_lib.Redis) -> Store:
    return Store(real_redis, prefix=f"t{secrets.token_hex(3)}:")


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def make_engine(
    make_settings: Callable[..., Settings],
    fake_store: Store,
    backend: Backend,
    collector: Collector,
) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(
        store: Store | None = None,
        settings: Settings | None = None,
        silences: Any = None,
        **env: str,
    ) -> Engine:
        engine = build_engine(
            settings or make_settings(**env),
            store=store or fake_store,
            build_actions=backend.factory,
            tell=collector,
            silences=silences,
        )
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.shutdown(5)


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


@pytest.fixture
def app(engine: Engine) -> Any:
    return create_app(engine.settings, engine=engine, start_sweeper=False)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": "Bearer admin-secret-token"}
