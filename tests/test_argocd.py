"""The Argo CD rollback, sync and watch steps against the fake Argo CD, including lost answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from receiver.act.argocd import ArgoCDRollback, ArgoCDSync, ArgoCDWatch
from receiver.act.base import ActionContext, RollbackJob
from receiver.act.polling import Pacing
from receiver.clients.argocd import (
    AUTOSYNC_REFUSAL,
    OPERATION_IN_PROGRESS,
    ArgoCDClient,
    forget_sessions,
)
from receiver.config import Secret, ServiceTarget
from receiver.errors import ActionError
from tests.fake_time import FakeClock as Clock
from tests.fakes.argocd import FakeApp, FakeArgoCD, running_argocd

V1, V2, V3, REVERT = "1" * 40, "2" * 40, "3" * 40, "4" * 40
PASSWORD = "argo-pass"
APP_PATH = "/api/v1/applications/checkout"


@pytest.fixture(autouse=True)
def no_cached_sessions() -> Iterator[None]:
    """Each test logs in afresh (session tokens are cached per server and account)."""
    forget_sessions()
    yield
    forget_sessions()


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
    pacing = Pacing(1.0, clock, clock.sleep)
    return kind(client(fake, clock), "checkout", validation_timeout=60.0, pacing=pacing, **kwargs)


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


# -- writes are never retried blindly (issue 10 item 3) ----------------------------------------


def test_a_rollback_that_took_effect_behind_a_502_goes_on_and_validates(
    argocd: FakeArgoCD,
) -> None:
    argocd.lose_answer("POST", "/rollback$")
    action, context = step(ArgoCDRollback, argocd), ctx()
    action.execute(job(), context)
    assert argocd.faults.count("POST", "/rollback$") == 1  # no blind re-send
    assert context.details["argocd_answer_lost"] is True
    assert context.details["argocd_history_id"] == 1
    action.validate(job(), context)
    assert argocd.apps["checkout"].deployed == V2


def test_a_rollback_whose_answer_timed_out_is_not_sent_again(argocd: FakeArgoCD) -> None:
    argocd.answer_late("POST", "/rollback$", 1.5)
    clock = Clock()
    api = client(argocd, clock, timeout=0.3)
    action = ArgoCDRollback(api, "checkout", pacing=Pacing(1.0, clock, clock.sleep))
    context = ctx()
    action.execute(job(), context)
    assert argocd.faults.count("POST", "/rollback$") == 1
    action.validate(job(), context)
    assert argocd.apps["checkout"].deployed == V2


def test_the_retry_that_would_meet_another_operation_in_progress_is_not_sent(
    argocd: FakeArgoCD,
) -> None:
    """Today's code re-sent the POST after the 502 and failed on Argo CD's refusal."""
    argocd.apps["checkout"].ticks_to_finish = 50  # our operation is still running on re-read
    argocd.lose_answer("POST", "/rollback$")
    context = ctx()
    step(ArgoCDRollback, argocd).execute(job(), context)
    refusals = [c for c in argocd.faults.calls if c.path.endswith("/rollback")]
    assert len(refusals) == 1
    assert argocd.apps["checkout"].operation is not None
    assert OPERATION_IN_PROGRESS not in " ".join(str(v) for v in context.details.values())


def test_a_rollback_that_did_not_land_is_sent_once_more_after_a_re_read(
    argocd: FakeArgoCD,
) -> None:
    argocd.faults.fail("POST", "/rollback$", 503, {"message": "unavailable", "code": 14})
    action, context = step(ArgoCDRollback, argocd), ctx()
    action.execute(job(), context)
    assert argocd.faults.count("POST", "/rollback$") == 2
    assert "argocd_answer_lost" not in context.details
    action.validate(job(), context)
    assert argocd.apps["checkout"].deployed == V2


def test_someone_elses_operation_after_an_unclear_answer_stops_the_rollback(
    argocd: FakeArgoCD,
) -> None:
    app = argocd.apps["checkout"]
    app.ticks_to_finish = 50

    def a_person_syncs(_call: object) -> None:
        app.start_operation(V3, {"username": "alice"})

    argocd.faults.on("POST", "/rollback$", a_person_syncs)
    argocd.faults.fail("POST", "/rollback$", 504, {"message": "deadline exceeded", "code": 4})
    with pytest.raises(ActionError) as caught:
        step(ArgoCDRollback, argocd).execute(job(), ctx())
    assert "another operation" in caught.value.message and V3[:7] in caught.value.message
    assert argocd.faults.count("POST", "/rollback$") == 1


def test_a_definite_refusal_fails_at_once_without_re_reading(argocd: FakeArgoCD) -> None:
    argocd.faults.fail(
        "POST",
        "/rollback$",
        403,
        {"error": "permission denied", "code": 7, "message": "permission denied"},
    )
    with pytest.raises(ActionError) as caught:
        step(ArgoCDRollback, argocd).execute(job(), ctx())
    assert "403: permission denied" in caught.value.message
    posted = max(i for i, c in enumerate(argocd.faults.calls) if c.method == "POST")
    assert all(c.method != "GET" for c in argocd.faults.calls[posted:])


def test_an_unreadable_argo_cd_after_an_unclear_answer_fails_saying_so(
    argocd: FakeArgoCD,
) -> None:
    def argo_cd_goes_away(_call: object) -> None:
        argocd.faults.fail("GET", APP_PATH + "$", 503, {"message": "unavailable"}, times=100)

    argocd.faults.on("POST", "/rollback$", argo_cd_goes_away)
    argocd.lose_answer("POST", "/rollback$")
    with pytest.raises(ActionError) as caught:
        step(ArgoCDRollback, argocd).execute(job(), ctx())
    assert "could not be re-read" in caught.value.message
    assert argocd.faults.count("POST", "/rollback$") == 1


def test_a_sync_that_took_effect_behind_a_502_is_not_sent_again(
    argocd: FakeArgoCD, head: dict[str, str]
) -> None:
    head["sha"] = REVERT
    argocd.lose_answer("POST", "/sync$")
    action, context = step(ArgoCDSync, argocd), ctx(revert_commit=REVERT)
    action.execute(job(mode="both"), context)
    assert argocd.faults.count("POST", "/sync$") == 1
    assert context.details["argocd_answer_lost"] is True
    action.validate(job(mode="both"), context)
    assert argocd.apps["checkout"].deployed == REVERT


def test_an_auto_sync_disable_behind_a_502_is_seen_and_the_rollback_goes_on(
    argocd: FakeArgoCD,
) -> None:
    argocd.apps["checkout"].automated = {"prune": True}
    argocd.lose_answer("PATCH", APP_PATH + "$")
    context = ctx()
    step(ArgoCDRollback, argocd, disable_autosync=True).execute(job(), context)
    assert argocd.faults.count("PATCH", APP_PATH + "$") == 1
    assert context.details["autosync_disabled"] is True
    assert context.details["autosync_previous"] == {"prune": True}
    assert argocd.faults.count("POST", "/rollback$") == 1


def test_the_receivers_own_deployments_are_told_from_peoples(argocd: FakeArgoCD) -> None:
    action, context = step(ArgoCDRollback, argocd), ctx()
    action.execute(job(), context)
    action.validate(job(), context)
    state = action.client.get_app("checkout")
    ours = state.entries_initiated_by(action.client.account)
    assert [(e.id, e.revision) for e in ours] == [(3, V2)]
    assert state.entries_initiated_by("alice") == ()


def test_through_the_engine_a_rollback_behind_a_502_ends_completed(
    argocd: FakeArgoCD, make_settings: Any, real_store: Any
) -> None:
    """Today's code re-sent the POST, met 'another operation is already in progress', failed."""
    from receiver.app import build_engine
    from receiver.intake.payload import parse_alert
    from tests.support import alert

    argocd.lose_answer("POST", "/rollback$")
    settings = make_settings(
        ROLLBACK_MODE="argocd",
        ARGOCD_SERVER=argocd.address,
        ARGOCD_PLAINTEXT="true",
        ARGOCD_APP_NAME="checkout",
        ARGOCD_PASSWORD=PASSWORD,
        VALIDATION_TIMEOUT_SECONDS="30",
    )
    engine = build_engine(settings, store=real_store)
    try:
        outcome = engine.handle_alert(parse_alert(alert(), 0))
        assert outcome.decision == "rollback", outcome
        assert engine.wait_idle(40)
        record = real_store.get_record(outcome.rollback_id)
    finally:
        engine.shutdown(5)
    assert record.state == "completed", (record.state, record.stages)
    assert record.details["argocd_answer_lost"] is True  # the record tells what Argo CD did
    assert argocd.faults.count("POST", "/rollback$") == 1
    assert argocd.apps["checkout"].deployed == V2


def test_inspect_reads_an_application_once_per_delivery(argocd: FakeArgoCD) -> None:
    from receiver.act.shared_reads import delivery_scope

    def reads() -> int:
        return sum(c.method == "GET" and c.path == APP_PATH for c in argocd.faults.calls)

    with delivery_scope():
        for _ in range(3):
            step(ArgoCDRollback, argocd).inspect(job())
        step(ArgoCDWatch, argocd).inspect(job())
    in_delivery = reads()
    step(ArgoCDRollback, argocd).inspect(job())  # outside a delivery: read again
    assert in_delivery == 1 and reads() == 2


def test_past_rollbacks_are_the_entries_of_the_receivers_own_account_only(
    argocd: FakeArgoCD,
) -> None:
    import time

    app = argocd.apps["checkout"]
    app._deploy_record(V2, time.time() - 120, {"username": "admin"})  # the receiver (its account)
    app._deploy_record(V3, time.time() - 60, {"username": "alice"})  # a person's rollback
    past = step(ArgoCDRollback, argocd).past_rollbacks(job())
    assert [(p.rolled_back_from, p.restored) for p in past] == [(V3, V2)]
    assert past[0].rollback_id == "argocd:checkout:3"
