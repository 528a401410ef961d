"""`AppState.from_api`: the typed reading of an Argo CD Application (API-FACTS C.2)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from receiver.clients.argocd_app import AppShapeError, AppState

V1, V2, V3 = "1" * 40, "2" * 40, "3" * 40


def application(**status: Any) -> dict[str, Any]:
    """An Application as Argo CD 3.x answers it, with three deployments."""
    body: dict[str, Any] = {
        "metadata": {"name": "checkout", "namespace": "argocd"},
        "spec": {"syncPolicy": {"automated": {"prune": True, "selfHeal": True}}},
        "status": {
            "sync": {"status": "Synced", "revision": V3},
            "health": {"status": "Degraded", "message": "1/3 pods ready"},
            "history": [
                {
                    "id": 7,
                    "revision": V1,
                    "deployedAt": "2026-08-22T09:00:00Z",
                    "initiatedBy": {"automated": True},
                },
                {
                    "id": 8,
                    "revision": V2,
                    "deployedAt": "2026-08-22T10:00:00Z",
                    "initiatedBy": {"username": "rollback-receiver"},
                },
                {
                    "id": 9,
                    "revision": V3,
                    "deployedAt": "2026-08-22T11:00:00Z",
                    "initiatedBy": {"username": "alice@example.com", "automated": False},
                },
            ],
        },
    }
    body["status"].update(status)
    return body


def test_the_fields_the_steps_read_are_typed() -> None:
    app = AppState.from_api(application())
    assert app.name == "checkout" and app.sync_status == "Synced" and app.sync_revision == V3
    assert app.health == "Degraded" and app.health_message == "1/3 pods ready"
    assert app.autosync is True and app.automated == {"prune": True, "selfHeal": True}
    assert [e.id for e in app.history] == [7, 8, 9]
    first = app.history[0]
    assert first.automated is True and first.initiated_by is None
    assert app.history[1].deployed_at == datetime(2026, 8, 22, 10, tzinfo=UTC).timestamp()
    assert app.deployed_revision == V3
    assert app.newest_deploy_at == datetime(2026, 8, 22, 11, tzinfo=UTC).timestamp()
    assert app.operation is None and app.operation_running is False


def test_entries_initiated_by_an_account_exclude_automated_syncs_and_people() -> None:
    app = AppState.from_api(application())
    assert [e.id for e in app.entries_initiated_by("rollback-receiver")] == [8]
    assert [e.id for e in app.entries_initiated_by("alice@example.com")] == [9]
    assert app.entries_initiated_by("") == ()  # an automated entry has no username


def test_an_automated_entry_naming_the_account_is_not_the_accounts() -> None:
    body = application()
    body["status"]["history"][0]["initiatedBy"] = {
        "username": "rollback-receiver",
        "automated": True,
    }
    app = AppState.from_api(body)
    assert [e.id for e in app.entries_initiated_by("rollback-receiver")] == [8]


def test_enabled_false_means_auto_sync_off() -> None:
    body = application()
    body["spec"]["syncPolicy"]["automated"] = {"enabled": False}
    assert AppState.from_api(body).autosync is False
    del body["spec"]["syncPolicy"]["automated"]
    assert AppState.from_api(body).autosync is False


def test_a_queued_and_a_finished_operation() -> None:
    body = application(
        operationState={
            "phase": "Failed",
            "message": "one or more objects failed to apply",
            "operation": {"sync": {"revision": V2}},
            "startedAt": "2026-08-22T11:05:00Z",
        }
    )
    finished = AppState.from_api(body)
    assert finished.failed_operation is not None and finished.failed_operation.revision == V2
    assert finished.operation_running is False and finished.operation_revision == V2
    body["operation"] = {"sync": {"revision": V1}, "initiatedBy": {"username": "x"}}
    queued = AppState.from_api(body)
    assert queued.operation_running is True and queued.operation_revision == V1
    assert queued.failed_operation is None


def test_operation_since_sees_a_queued_a_finished_and_a_recorded_operation() -> None:
    before = AppState.from_api(application())
    queued = copy.deepcopy(application())
    queued["operation"] = {"sync": {"revision": V2}}
    assert AppState.from_api(queued).operation_since(before, V2) is True
    assert AppState.from_api(queued).operation_since(before, V1) is False
    finished = application(
        operationState={"phase": "Succeeded", "operation": {"sync": {"revision": V2}}}
    )
    assert AppState.from_api(finished).operation_since(before, V2) is True
    recorded = application()
    recorded["status"]["history"].append({"id": 10, "revision": V2})
    assert AppState.from_api(recorded).operation_since(before, V2) is True
    assert before.operation_since(before, V2) is False
    assert AppState.from_api(queued).operation_since(before, None) is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "not an object"),
        ({"status": []}, "application.status is not an object"),
        ({"status": {"history": {}}}, "status.history is not a list"),
        ({"status": {"history": [{"id": "7"}]}}, "status.history[0].id is not a number"),
        ({"status": {"history": [{"id": True}]}}, "status.history[0].id is not a number"),
        ({"status": {"sync": {"status": 3}}}, "status.sync.status is not a string"),
        ({"spec": {"syncPolicy": {"automated": True}}}, "automated is not an object"),
    ],
)
def test_a_wrong_shape_is_an_error_naming_the_field(body: Any, message: str) -> None:
    with pytest.raises(AppShapeError) as caught:
        AppState.from_api(body)
    assert message in str(caught.value)


def test_a_fresh_app_without_status_reads_as_empty() -> None:
    app = AppState.from_api({"metadata": {"name": "new"}})
    assert app.history == () and app.deployed_revision is None and app.sync_status == "Unknown"
