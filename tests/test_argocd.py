"""The Argo CD client and the Argo CD rollback, sync and watch steps, against the fake Argo CD."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from receiver.act.argocd import (
    AUTOSYNC_REFUSAL,
    ArgoCDClient,
    ArgoCDError,
    ArgoCDRollback,
    ArgoCDSync,
    ArgoCDWatch,
)
from receiver.act.base import ActionContext, RollbackJob
from receiver.config import Secret, ServiceTarget
from receiver.errors import ActionError
from tests.fakes.argocd import FakeApp, FakeArgoCD, running_argocd

V1, V2, V3, REVERT = "1" * 40, "2" * 40, "3" * 40, "4" * 40
PASSWORD = "argo-pass"
APP_PATH = "/api/v1/applications/checkout"


class Clock:
    """A fake monotonic clock that sleeping advances; records the sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def head() -> dict[str, str]:
    """What the app's targetRevision (main) resolves to in git."""
    return {"sha": V3}


@pytest.fixture
def argocd(head: dict[str, str]) -> Iterator[FakeArgoCD]:
    app = FakeApp("checkout", revisions=[V1, V2, V3], resolve=lambda: head["sha"])
    with running_argocd(app, password=PASSWORD, api_tokens=("static-api-token",)) as fake:
        yield fake


def client(fake: FakeArgoCD, clock: Clock | None = None, **kwargs: Any) -> ArgoCDClient:
    options: dict[str, Any] = {
        "password": Secret("ARGOCD_PASSWORD", PASSWORD),
        "plaintext": True,
        "sleep": (clock or Clock()).sleep,
    }
    options.update(kwargs)
    return ArgoCDClient(fake.address, **options)


def job(**changes: Any) -> RollbackJob:
    base = RollbackJob(
        rollback_id="rb-7",
        service="checkout",
        namespace="production",
        tier="critical",
        target=ServiceTarget("checkout", "production", None, "checkout"),
        mode="argocd",
        reason="error budget",
        fingerprint="fp",
    )
    return replace(base, **changes)


def ctx(**details: Any) -> ActionContext:
    return ActionContext(ensure_owned=lambda: None, details=dict(details))


def step(kind: type, fake: FakeArgoCD, clock: Clock | None = None, **kwargs: Any) -> Any:
    clock = clock or Clock()
    with_client = client(fake, clock)
    return kind(
        with_client,
        "checkout",
        poll_seconds=1.0,
        validation_timeout=60.0,
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )


# -- client ------------------------------------------------------------------------------------


def test_the_client_logs_in_once_and_reuses_the_session(argocd: FakeArgoCD) -> None:
    with client(argocd) as api:
        api.get_app("checkout")
        api.get_app("checkout")
    assert argocd.logins == 1
    assert argocd.faults.count("POST", "/api/v1/session") == 1


def test_an_expired_session_is_renewed_once(argocd: FakeArgoCD) -> None:
    with client(argocd) as api:
        api.get_app("checkout")
        argocd.expire_sessions()
        assert api.get_app("checkout")["metadata"]["name"] == "checkout"
    assert argocd.logins == 2


def test_a_wrong_password_fails_with_argo_cds_message_and_no_secret(argocd: FakeArgoCD) -> None:
    with client(argocd, password=Secret("ARGOCD_PASSWORD", "nope-secret")) as api:
        with pytest.raises(ArgoCDError) as caught:
            api.get_app("checkout")
    assert caught.value.status == 401
    assert "Invalid username or password" in str(caught.value)
    assert "nope-secret" not in str(caught.value)
    assert argocd.faults.count("POST", "/api/v1/session") == 1


def test_an_api_token_is_used_without_logging_in(argocd: FakeArgoCD) -> None:
    with client(argocd, password=None, token=Secret("ARGOCD_TOKEN", "static-api-token")) as api:
        api.get_app("checkout")
    assert argocd.logins == 0
    assert argocd.faults.calls[-1].headers["Authorization"] == "Bearer static-api-token"


def test_server_errors_are_retried_with_backoff(argocd: FakeArgoCD) -> None:
    argocd.faults.fail(
        "GET",
        APP_PATH + "$",
        503,
        {"error": "unavailable", "code": 14, "message": "unavailable"},
        times=2,
    )
    clock = Clock()
    with client(argocd, clock) as api:
        assert api.get_app("checkout")["metadata"]["name"] == "checkout"
    assert clock.sleeps == [0.5, 1.0]
    assert argocd.faults.count("GET", APP_PATH + "$") == 3


def test_persistent_server_errors_fail_after_bounded_attempts(argocd: FakeArgoCD) -> None:
    argocd.faults.fail(
        "POST", APP_PATH + "/sync", 500, {"error": "boom", "code": 2, "message": "boom"}, times=10
    )
    with client(argocd, attempts=3) as api, pytest.raises(ArgoCDError) as caught:
        api.sync("checkout")
    assert caught.value.status == 500 and "boom" in str(caught.value)
    assert argocd.faults.count("POST", APP_PATH + "/sync") == 3


def test_client_errors_are_not_retried(argocd: FakeArgoCD) -> None:
    with client(argocd) as api, pytest.raises(ArgoCDError) as caught:
        api.get_app("missing-app")
    assert caught.value.status == 403 and caught.value.message == "permission denied"
    assert argocd.faults.count("GET", "/missing-app") == 1


def test_connection_errors_are_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = Clock()
    api = ArgoCDClient(
        f"127.0.0.1:{port}",
        token=Secret("ARGOCD_TOKEN", "t"),
        plaintext=True,
        attempts=3,
        sleep=clock.sleep,
    )
    with api, pytest.raises(ArgoCDError) as caught:
        api.get_app("checkout")
    assert caught.value.status == 0 and "cannot reach Argo CD" in str(caught.value)
    assert len(clock.sleeps) == 2


def test_tls_settings_choose_scheme_and_verification() -> None:
    with ArgoCDClient("argocd.example:443", insecure=True) as api:
        assert api.base_url == "https://argocd.example:443"
        assert api.verify is False
    with ArgoCDClient("argocd:80", plaintext=True) as api:
        assert api.base_url == "http://argocd:80" and api.verify is True


def test_the_fake_refuses_a_rollback_with_auto_sync_like_argo_cd(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].automated = {"prune": True, "selfHeal": True}
    with client(argocd) as api, pytest.raises(ArgoCDError) as caught:
        api.rollback("checkout", 1)
    assert caught.value.status == 400 and caught.value.message == AUTOSYNC_REFUSAL


def test_a_sync_naming_another_revision_with_auto_sync_is_refused(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].automated = {"prune": True}
    with client(argocd) as api, pytest.raises(ArgoCDError) as caught:
        api.sync("checkout", REVERT)
    assert caught.value.message == f"Cannot sync to {REVERT}: auto-sync currently set to main"


# -- mode argocd: rollback -------------------------------------------------------------------


def test_inspect_reports_deployed_and_previous_revisions(argocd: FakeArgoCD) -> None:
    facts = step(ArgoCDRollback, argocd).inspect(job())
    newest = argocd.apps["checkout"].history[-1]
    assert facts.current == V3 and facts.target == V2
    assert facts.details["argocd_history_id"] == 1
    assert facts.last_change_at is not None
    assert abs(facts.last_change_at - _epoch(newest["deployedAt"])) < 1
    assert facts.autosync_blocks is False and facts.already_rolled_back is False


def test_inspect_says_already_rolled_back_when_the_deployed_revision_was_restored_by_us(
    argocd: FakeArgoCD,
) -> None:
    facts = step(ArgoCDRollback, argocd).inspect(job(rolled_back_to=frozenset({V3})))
    assert facts.already_rolled_back is True


def test_auto_sync_blocks_a_rollback_unless_disabling_is_allowed(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].automated = {"prune": True, "selfHeal": True}
    blocked = step(ArgoCDRollback, argocd).inspect(job())
    assert blocked.autosync_blocks is True
    assert AUTOSYNC_REFUSAL in blocked.details["autosync_message"]
    allowed = step(ArgoCDRollback, argocd, disable_autosync=True).inspect(job())
    assert allowed.autosync_blocks is False


def test_auto_sync_with_enabled_false_does_not_block(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].automated = {"enabled": False, "prune": True}
    assert step(ArgoCDRollback, argocd).inspect(job()).autosync_blocks is False


def test_a_rollback_deploys_the_previous_history_entry_and_validates(argocd: FakeArgoCD) -> None:
    action, context = step(ArgoCDRollback, argocd), ctx()
    action.execute(job(), context)
    assert argocd.faults.calls[-1].body["id"] == 1
    assert context.details["argocd_history_id"] == 1
    assert context.details["argocd_revision"] == V2
    assert context.details["rolled_back_from"] == V3
    action.validate(job(), context)
    app = argocd.apps["checkout"]
    assert app.deployed == V2 and app.health == "Healthy"


def test_execute_refuses_with_auto_sync_on_and_calls_no_rollback(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].automated = {"prune": True}
    with pytest.raises(ActionError) as caught:
        step(ArgoCDRollback, argocd).execute(job(), ctx())
    assert caught.value.stage == "argocd" and AUTOSYNC_REFUSAL in caught.value.message
    assert "ARGOCD_DISABLE_AUTOSYNC" in caught.value.message
    assert argocd.faults.count("POST", "/rollback") == 0


def test_disable_autosync_patches_it_off_first_and_records_it(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].automated = {"prune": True, "selfHeal": True}
    context = ctx()
    step(ArgoCDRollback, argocd, disable_autosync=True).execute(job(), context)
    patch = next(c for c in argocd.faults.calls if c.method == "PATCH")
    assert patch.body["patchType"] == "merge"
    assert argocd.apps["checkout"].automated is None
    assert context.details["autosync_disabled"] is True
    assert context.details["autosync_previous"] == {"prune": True, "selfHeal": True}
    assert argocd.faults.count("POST", "/rollback") == 1


@pytest.mark.parametrize("wanted", ["0", V1[:10]])
def test_target_revision_picks_a_history_entry_by_id_or_revision(
    argocd: FakeArgoCD, wanted: str
) -> None:
    context = ctx()
    step(ArgoCDRollback, argocd).execute(job(target_revision=wanted), context)
    assert context.details["argocd_history_id"] == 0 and context.details["argocd_revision"] == V1


def test_an_unknown_target_revision_fails_with_argo_cds_wording(argocd: FakeArgoCD) -> None:
    with pytest.raises(ActionError) as caught:
        step(ArgoCDRollback, argocd).inspect(job(target_revision="42"))
    assert "does not have deployment id or revision '42' in history" in caught.value.message


def test_the_rollback_skips_bad_revisions(argocd: FakeArgoCD) -> None:
    facts = step(ArgoCDRollback, argocd).inspect(job(bad_revisions=frozenset({V2})))
    assert facts.target == V1 and facts.details["argocd_history_id"] == 0


def test_an_app_with_one_deployment_cannot_be_rolled_back(argocd: FakeArgoCD) -> None:
    argocd.add(FakeApp("single", revisions=[V1]))
    action = ArgoCDRollback(client(argocd), "single")
    with pytest.raises(ActionError) as caught:
        action.inspect(job())
    assert "should have at least two successful deployments" in caught.value.message


def test_an_unknown_app_fails_inspect_with_permission_denied(argocd: FakeArgoCD) -> None:
    with pytest.raises(ActionError) as caught:
        ArgoCDRollback(client(argocd), "ghost").inspect(job())
    assert "permission denied" in caught.value.message


# -- mode both: refresh and sync ---------------------------------------------------------------


def test_with_auto_sync_argo_cd_deploys_the_revert_itself(
    argocd: FakeArgoCD, head: dict[str, str]
) -> None:
    argocd.apps["checkout"].automated = {"prune": True, "selfHeal": True}
    head["sha"] = REVERT  # the git step pushed the revert commit
    action, context = step(ArgoCDSync, argocd), ctx(revert_commit=REVERT)
    action.execute(job(mode="both"), context)
    assert argocd.faults.count("POST", "/sync") == 0
    first_get = next(c for c in argocd.faults.calls if c.method == "GET")
    assert first_get.query == {"refresh": "hard"}
    assert context.details["argocd_sync"] == "automated"
    action.validate(job(mode="both"), context)
    assert argocd.apps["checkout"].deployed == REVERT


def test_with_auto_sync_silent_the_receiver_syncs_without_a_revision(
    argocd: FakeArgoCD, head: dict[str, str]
) -> None:
    app = argocd.apps["checkout"]
    app.automated, app.autosync_reacts = {"prune": True}, False
    head["sha"] = REVERT
    clock = Clock()
    action, context = step(ArgoCDSync, argocd, clock, autosync_wait=5.0), ctx(revert_commit=REVERT)
    action.execute(job(mode="both"), context)
    sync = next(c for c in argocd.faults.calls if c.path.endswith("/sync"))
    assert "revision" not in sync.body
    assert sum(clock.sleeps) >= 5.0
    assert context.details["argocd_sync"] == "requested"
    action.validate(job(mode="both"), context)
    assert app.deployed == REVERT


def test_without_auto_sync_the_revert_commit_is_synced(
    argocd: FakeArgoCD, head: dict[str, str]
) -> None:
    head["sha"] = REVERT
    action, context = step(ArgoCDSync, argocd), ctx(revert_commit=REVERT)
    action.execute(job(mode="both"), context)
    sync = next(c for c in argocd.faults.calls if c.path.endswith("/sync"))
    assert sync.body["revision"] == REVERT
    action.validate(job(mode="both"), context)
    assert argocd.apps["checkout"].deployed == REVERT


def test_a_sync_failure_names_the_revert_commit(argocd: FakeArgoCD, head: dict[str, str]) -> None:
    head["sha"] = REVERT
    argocd.faults.fail(
        "POST",
        "/sync",
        403,
        {
            "error": "cannot sync: blocked by sync window",
            "code": 7,
            "message": "cannot sync: blocked by sync window",
        },
    )
    context = ctx(revert_commit=REVERT)
    with pytest.raises(ActionError) as caught:
        step(ArgoCDSync, argocd).execute(job(mode="both"), context)
    assert caught.value.stage == "argocd" and "blocked by sync window" in caught.value.message
    assert caught.value.details["revert_commit"] == REVERT


def test_the_sync_step_needs_a_revert_commit(argocd: FakeArgoCD) -> None:
    with pytest.raises(ActionError) as caught:
        step(ArgoCDSync, argocd).execute(job(mode="both"), ctx())
    assert caught.value.stage == "argocd"


def test_a_pull_request_rollback_leaves_argo_cd_alone(argocd: FakeArgoCD) -> None:
    context = ctx(revert_commit=REVERT, validated=False, pull_request="https://x/pull/1")
    action = step(ArgoCDSync, argocd)
    action.execute(job(mode="both"), context)
    action.validate(job(mode="both"), context)
    assert argocd.faults.calls == []


# -- validation --------------------------------------------------------------------------------


def test_a_failed_sync_operation_fails_validation(argocd: FakeArgoCD, head: dict[str, str]) -> None:
    head["sha"] = REVERT
    argocd.apps["checkout"].operation_outcome = "Failed"
    action, context = step(ArgoCDSync, argocd), ctx(revert_commit=REVERT)
    action.execute(job(mode="both"), context)
    with pytest.raises(ActionError) as caught:
        action.validate(job(mode="both"), context)
    assert caught.value.stage == "validation"
    assert "Failed" in caught.value.message and "failed to apply" in caught.value.message


def test_a_degraded_app_fails_validation(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].health_after_sync = "Degraded"
    action, context = step(ArgoCDRollback, argocd), ctx()
    action.execute(job(), context)
    with pytest.raises(ActionError) as caught:
        action.validate(job(), context)
    assert caught.value.stage == "validation" and "Degraded" in caught.value.message


def test_validation_times_out_when_the_app_never_gets_there(
    argocd: FakeArgoCD, head: dict[str, str]
) -> None:
    app = argocd.apps["checkout"]
    app.ticks_to_finish = 10_000  # the operation never finishes
    head["sha"] = REVERT
    clock = Clock()
    action, context = step(ArgoCDSync, argocd, clock), ctx(revert_commit=REVERT)
    action.execute(job(mode="both"), context)
    with pytest.raises(ActionError) as caught:
        action.validate(job(mode="both"), context)
    assert caught.value.stage == "validation" and "within 60 s" in caught.value.message
    assert "operation running" in caught.value.message
    assert 60.0 <= sum(clock.sleeps) <= 80.0


def test_server_errors_while_validating_are_polled_through(
    argocd: FakeArgoCD, head: dict[str, str]
) -> None:
    head["sha"] = REVERT
    action, context = step(ArgoCDSync, argocd), ctx(revert_commit=REVERT)
    action.execute(job(mode="both"), context)
    argocd.faults.fail(
        "GET",
        APP_PATH + "$",
        500,
        {
            "error": "application refresh deadline exceeded",
            "code": 2,
            "message": "application refresh deadline exceeded",
        },
        times=6,
    )
    action.validate(job(mode="both"), context)
    assert argocd.apps["checkout"].deployed == REVERT


def test_the_gitops_watch_step_changes_nothing_and_waits_for_the_commit(
    argocd: FakeArgoCD, head: dict[str, str]
) -> None:
    argocd.apps["checkout"].automated = {"prune": True}
    head["sha"] = REVERT
    action, context = step(ArgoCDWatch, argocd), ctx(revert_commit=REVERT)
    action.execute(job(mode="gitops"), context)
    assert argocd.faults.calls == []
    action.validate(job(mode="gitops"), context)
    assert argocd.apps["checkout"].deployed == REVERT
    assert all(c.method == "GET" for c in argocd.faults.calls if c.path != "/api/v1/session")


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_inspect_tries_once_because_it_runs_in_the_webhook_request(argocd: FakeArgoCD) -> None:
    argocd.faults.fail(
        "GET", APP_PATH + "$", 503, {"error": "unavailable", "code": 14, "message": "unavailable"}
    )
    with pytest.raises(ActionError) as caught:
        step(ArgoCDSync, argocd).inspect(job(mode="both"))
    assert "503" in caught.value.message
    assert argocd.faults.count("GET", APP_PATH + "$") == 1
