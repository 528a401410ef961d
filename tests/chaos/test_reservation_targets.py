"""Issue 10 item 2: lock, cooldown and rate limits hold per target (Argo CD app, repo+path)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from receiver.pipeline import Engine
from receiver.state.store import Store
from receiver.sweeper import sweep_once
from tests.chaos.support import fire, write_config
from tests.support import Backend

SERVICES = {
    "cart": {"app": "shop-umbrella"},
    "checkout": {"app": "shop-umbrella"},
    "api": {"path": "k8s/api"},
    "api-eu": {"path": "k8s/api/overlays/eu"},
    "api-gateway": {"path": "k8s/api-gateway"},
    "api-next": {"path": "k8s/api/overlays/eu", "branch": "next"},
    "other-repo": {"path": "k8s/api", "repo": "acme/other"},
}


@pytest.fixture
def make(make_engine: Any, real_store: Store, tmp_path: Path) -> Any:
    config = write_config(tmp_path / "services.yaml", SERVICES)

    def build(**env: str) -> Engine:
        engine: Engine = make_engine(store=real_store, ROLLBACK_CONFIG=config, **env)
        return engine

    return build


def test_two_services_of_one_argocd_app_cannot_both_roll_it_back(
    make: Any, backend: Backend, real_store: Store
) -> None:
    engine = make(COOLDOWN_MINUTES="0", ROLLBACK_MODE="gitops")
    backend.release = threading.Event()
    first = fire(engine, "cart")
    second = fire(engine, "checkout")
    backend.release.set()
    assert engine.wait_idle(10)
    assert (first.reason, second.reason) == ("passed", "locked")
    record = real_store.get_record(second.rollback_id or "")
    assert (
        record is not None and "shared target argocd:shop-umbrella" in record.checks[-1]["detail"]
    )
    assert first.rollback_id in record.checks[-1]["detail"]


def test_the_cooldown_of_a_shared_app_holds_for_the_other_service(
    make: Any, real_store: Store
) -> None:
    engine = make(COOLDOWN_MINUTES="30")
    assert fire(engine, "cart").reason == "passed"
    assert engine.wait_idle(10)
    blocked = fire(engine, "checkout")
    record = real_store.get_record(blocked.rollback_id or "")
    assert blocked.reason == "cooldown" and record is not None
    assert record.checks[-1]["detail"].startswith("shared target argocd:shop-umbrella: cooldown")


def test_the_hour_limit_of_a_shared_app_holds_for_the_other_service(make: Any) -> None:
    engine = make(COOLDOWN_MINUTES="0", MAX_ROLLBACKS_PER_HOUR="1")
    assert fire(engine, "cart").reason == "passed"
    assert engine.wait_idle(10)
    assert fire(engine, "checkout").reason == "rate_limit_hour"


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        ("api", "api-eu", "locked"),  # a folder and a folder inside it
        ("api-eu", "api", "locked"),  # and the other way round
        ("api", "api-gateway", "passed"),  # a sibling sharing a prefix, not a path
        ("api-eu", "api-next", "passed"),  # same path on another branch
        ("api", "other-repo", "passed"),  # same path in another repo
    ],
)
def test_folders_conflict_when_one_contains_the_other_on_one_repo_and_branch(
    make: Any, backend: Backend, real_store: Store, first: str, second: str, reason: str
) -> None:
    engine = make(COOLDOWN_MINUTES="0")
    backend.release = threading.Event()
    assert fire(engine, first).reason == "passed"
    outcome = fire(engine, second)
    backend.release.set()
    assert engine.wait_idle(10)
    assert outcome.reason == reason
    if reason == "locked":
        record = real_store.get_record(outcome.rollback_id or "")
        assert record is not None and "shared target git:acme/gitops@main:" in str(record.checks)


def test_a_contained_folder_waits_out_the_cooldown_of_its_parent(make: Any) -> None:
    engine = make(COOLDOWN_MINUTES="30")
    assert fire(engine, "api-eu").reason == "passed"
    assert engine.wait_idle(10)
    assert fire(engine, "api").reason == "cooldown"
    assert fire(engine, "api-gateway").reason == "passed"


def test_release_and_reap_free_every_target_of_the_lock_record(
    make: Any, real_store: Store
) -> None:
    engine = make(COOLDOWN_MINUTES="0", MAX_ROLLBACKS_PER_HOUR="10")
    assert fire(engine, "cart").reason == "passed"  # released when it ends
    assert engine.wait_idle(10)
    assert real_store.client.keys(real_store.prefix + "tlock:*") == []
    # a rollback whose process died: nobody renews, the lease runs out, a sweep reaps it all
    held = real_store.reserve(
        service="api",
        rollback_id="rb-dead",
        episode=None,
        mode="reserve",
        force=True,
        lease_seconds=1,
        cooldown_minutes=0,
        max_hour=10,
        max_day=10,
        max_concurrent=10,
        targets=engine_targets("api"),
    )
    assert held.ok and fire(engine, "api-eu").reason == "locked"
    target_lock = real_store.prefix + "tlock:git:acme/gitops@main:k8s/api"
    wait_for(lambda: real_store.client.get(target_lock) is None)
    sweep_once(engine)
    assert real_store.client.hget(real_store.prefix + "locktargets", "api") is None
    assert real_store.client.zscore(real_store.prefix + "locks", "api") is None
    assert fire(engine, "api-eu").reason == "passed"
    assert engine.wait_idle(10)


def engine_targets(service: str) -> Any:
    from receiver.decide.targets import GitOpsTarget, ServiceTarget
    from receiver.reserving import safety_targets

    where = SERVICES[service]
    gitops = (
        GitOpsTarget(where.get("repo", "acme/gitops"), where["path"]) if "path" in where else None
    )
    return safety_targets(ServiceTarget(service, "production", gitops, where.get("app")))


def wait_for(condition: Any, seconds: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")
