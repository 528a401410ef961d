"""Auto-sync the receiver turned off stays visible (gauge, status field) until it is on again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from receiver.app import build_engine, create_app
from receiver.config import Settings
from receiver.pipeline import Engine
from receiver.state import autosync
from receiver.state.store import Store
from receiver.sweeper import sweep_once
from tests.fakes.argocd import FakeApp, FakeArgoCD, running_argocd
from tests.support import Collector

ADMIN = {"Authorization": "Bearer admin-secret-token"}
PASSWORD = "argo-pass"
SERIES = 'rollback_argocd_autosync_disabled{app="api-prod"} 1'


@pytest.fixture
def app() -> FakeApp:
    return FakeApp(
        "api-prod",
        revisions=["a" * 40, "b" * 40, "c" * 40],
        automated={"prune": True, "selfHeal": True},
        autosync_reacts=False,
    )


@pytest.fixture
def argocd(app: FakeApp) -> Iterator[FakeArgoCD]:
    with running_argocd(app, password=PASSWORD) as fake:
        yield fake


@pytest.fixture
def receiver(
    make_settings: Callable[..., Settings],
    fake_store: Store,
    collector: Collector,
    argocd: FakeArgoCD,
) -> Iterator[tuple[Any, Engine]]:
    settings = make_settings(
        ROLLBACK_MODE="argocd",
        ARGOCD_SERVER=argocd.address,
        ARGOCD_PLAINTEXT="true",
        ARGOCD_APP_NAME="api-prod",
        ARGOCD_PASSWORD=PASSWORD,
        ARGOCD_DISABLE_AUTOSYNC="true",
        VALIDATION_TIMEOUT_SECONDS="20",
    )
    engine = build_engine(settings, store=fake_store, tell=collector)
    yield create_app(settings, engine=engine, start_sweeper=False).test_client(), engine
    engine.shutdown(5)


def test_a_rollback_that_turned_auto_sync_off_sets_the_gauge_and_status_until_it_is_on_again(
    receiver: tuple[Any, Engine], app: FakeApp
) -> None:
    client, engine = receiver
    assert SERIES not in client.get("/metrics").get_data(as_text=True)
    answer = client.post("/api/v1/rollbacks", headers=ADMIN, json={"service": "api"})
    assert answer.status_code == 202, answer.get_json()
    assert engine.wait_idle(30)
    record = engine.store.get_record(answer.get_json()["rollback_id"])
    assert record is not None and record.details.get("autosync_disabled") is True, record
    assert app.automated is None  # the receiver patched it off

    assert SERIES in client.get("/metrics").get_data(as_text=True)
    (status,) = client.get("/api/v1/status?service=api", headers=ADMIN).get_json()["services"]
    left = status["argocd_autosync_disabled"]
    assert left["app"] == "api-prod" and left["rollback_id"] == record.id and left["since"]

    sweep_once(engine)  # still off: stays remembered
    assert SERIES in client.get("/metrics").get_data(as_text=True)

    app.automated = {"prune": True}  # the operator re-enables auto-sync after the incident
    engine.store.client.delete(engine.store.key("once", "autosync-recheck"))  # the minute passed
    sweep_once(engine)
    assert SERIES not in client.get("/metrics").get_data(as_text=True)
    (status,) = client.get("/api/v1/status?service=api", headers=ADMIN).get_json()["services"]
    assert status["argocd_autosync_disabled"] is None


def test_the_first_disabling_rollback_is_kept_and_clear_says_whether_it_was_known(
    fake_store: Store,
) -> None:
    autosync.mark_disabled(fake_store, "api-prod", "rb-1", since=100.0)
    autosync.mark_disabled(fake_store, "api-prod", "rb-2", since=200.0)
    assert autosync.disabled_apps(fake_store) == {
        "api-prod": {"since": 100.0, "rollback_id": "rb-1"}
    }
    assert autosync.clear(fake_store, "api-prod") is True
    assert autosync.clear(fake_store, "api-prod") is False
    assert autosync.disabled_apps(fake_store) == {}
