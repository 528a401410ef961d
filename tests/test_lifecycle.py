"""The engine end to end with a recording backend: safety state, records, outcomes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from receiver.errors import Conflict, NotFound
from receiver.intake.payload import parse_alert
from receiver.pipeline import Engine, ManualRequest
from receiver.state.memory import RevisionMemory
from receiver.sweeper import sweep_once
from tests.support import Backend, Collector, age_starts, alert, sample


def fire(engine: Engine, **kwargs: Any) -> Any:
    return engine.handle_alert(parse_alert(alert(**kwargs), 0))


def failed(stage: str) -> float:
    return sample("rollback_failed_total", service="api", tier="emergency", stage=stage)


def test_a_second_episode_inside_the_cooldown_is_skipped_with_cooldown(engine: Engine) -> None:
    first = fire(engine, starts_at="2026-11-26T10:00:00Z")
    assert first.decision == "rollback"
    assert engine.wait_idle(10)
    second = fire(engine, starts_at="2026-11-26T11:00:00Z")
    assert (second.decision, second.reason) == ("skipped", "cooldown")
    record = engine.store.get_record(second.rollback_id)
    assert record.state == "skipped" and "s left" in record.checks[-1]["detail"]


def test_the_hour_and_day_limits_hold_without_a_cooldown(make_engine: Any) -> None:
    engine = make_engine(
        COOLDOWN_MINUTES="0", MAX_ROLLBACKS_PER_HOUR="2", MAX_ROLLBACKS_PER_DAY="3"
    )
    reasons = []
    for minute in range(4):
        outcome = fire(engine, starts_at=f"2026-11-26T10:0{minute}:00Z")
        engine.wait_idle(10)
        reasons.append(outcome.reason)
    assert reasons == ["passed", "passed", "rate_limit_hour", "rate_limit_hour"]
    age_starts(engine.store, 2 * 3600)  # two hours later the hour window is free, the day is not
    result = engine.store.reserve(
        service="api",
        rollback_id="rb-x",
        episode=None,
        mode="reserve",
        force=False,
        lease_seconds=30,
        cooldown_minutes=0,
        max_hour=2,
        max_day=3,
        max_concurrent=3,
    )
    assert result.reason == "ok"
    result = engine.store.reserve(
        service="api",
        rollback_id="rb-y",
        episode=None,
        mode="reserve",
        force=False,
        lease_seconds=30,
        cooldown_minutes=0,
        max_hour=2,
        max_day=3,
        max_concurrent=3,
    )
    assert result.reason in ("locked", "rate_limit_day")
    engine.store.release("api", "rb-x")
    result = engine.store.reserve(
        service="api",
        rollback_id="rb-z",
        episode=None,
        mode="reserve",
        force=False,
        lease_seconds=30,
        cooldown_minutes=0,
        max_hour=2,
        max_day=3,
        max_concurrent=3,
    )
    assert result.reason == "rate_limit_day"


def test_a_dry_run_records_the_episode_and_nothing_else(make_engine: Any, backend: Backend) -> None:
    engine = make_engine(DRY_RUN="true")
    first = fire(engine)
    assert (first.decision, first.reason) == ("skipped", "dry_run")
    record = engine.store.get_record(first.rollback_id)
    assert record.state == "skipped" and record.dry_run
    assert record.target == {"commit": "good123"}
    assert fire(engine).reason == "duplicate"
    assert backend.executed() == []
    assert engine.store.lock_owner("api") is None
    assert engine.store.window_counts("api")["hour"] == 0


def test_a_failing_backend_fails_at_its_stage_and_frees_the_lock(
    engine: Engine, backend: Backend, collector: Collector
) -> None:
    backend.fail_stage = "gitops"
    before = failed("gitops")
    outcome = fire(engine)
    assert engine.wait_idle(10)
    record = engine.store.get_record(outcome.rollback_id)
    assert (record.state, record.failed_stage) == ("failed", "gitops")
    assert "fast forward" in record.error
    assert record.target["revert_commit"] == "revert99"  # the partial result is named
    assert engine.store.lock_owner("api") is None
    assert failed("gitops") == before + 1
    assert collector.kinds() == ["started", "failed"]


def test_what_a_backend_says_it_did_reaches_the_log_with_the_rollback_id(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="receiver.dispatch"):
        outcome = fire(engine)
        assert engine.wait_idle(10)
    said = [r for r in caplog.records if r.getMessage() == "pushed revert99 restoring api"]
    assert said, [r.getMessage() for r in caplog.records]
    assert getattr(said[0], "rollback_id", None) == outcome.rollback_id
    assert getattr(said[0], "service", None) == "api"


def test_a_failed_validation_is_recorded_at_stage_validation(
    engine: Engine, backend: Backend
) -> None:
    backend.fail_stage = "validation"
    outcome = fire(engine)
    assert engine.wait_idle(10)
    record = engine.store.get_record(outcome.rollback_id)
    assert (record.state, record.failed_stage) == ("failed", "validation")


def test_a_completed_rollback_remembers_the_revisions_for_later_guards(engine: Engine) -> None:
    fire(engine)
    assert engine.wait_idle(10)
    memory = RevisionMemory(engine.store)
    for name in ("api", "git:acme/gitops@main:k8s/api"):  # the service and its target
        assert memory.bad_revisions([name]) == {"bad1234"}
        assert memory.restored_revisions([name]) == {"revert99"}


@pytest.mark.parametrize("stage", ["validation", "gitops"])
def test_a_pushed_commit_is_remembered_whatever_the_outcome(
    engine: Engine, backend: Backend, stage: str
) -> None:
    backend.fail_stage = stage  # the recording action "pushes" revert99 before failing
    outcome = fire(engine)
    assert engine.wait_idle(10)
    assert engine.store.get_record(outcome.rollback_id).state == "failed"
    memory = RevisionMemory(engine.store)
    assert memory.bad_revisions(["git:acme/gitops@main:k8s/api"]) == {"bad1234"}
    assert memory.restored_revisions(["api"]) == {"revert99"}


def test_an_escalating_skip_is_recorded_and_told(
    engine: Engine, backend: Backend, collector: Collector
) -> None:
    backend.already_rolled_back = True
    outcome = fire(engine)
    assert (outcome.decision, outcome.reason) == ("skipped", "already_rolled_back")
    assert engine.store.get_record(outcome.rollback_id).state == "skipped"
    assert collector.kinds() == ["escalation"]


def test_an_emergency_held_back_by_safety_is_told(make_engine: Any, collector: Collector) -> None:
    engine = make_engine(AUTO_ROLLBACK_EMERGENCY="false")
    assert fire(engine).reason == "tier_disabled"
    assert fire(engine, tier="critical").reason == "passed"
    engine.wait_idle(10)
    assert collector.kinds() == ["blocked_emergency", "started", "completed"]


def test_a_backend_that_cannot_inspect_blocks_the_rollback(
    engine: Engine, backend: Backend
) -> None:
    backend.inspect_error = "GitHub answered 401 Bad credentials"
    outcome = fire(engine)
    assert (outcome.decision, outcome.reason) == ("skipped", "no_target")
    assert "Bad credentials" in engine.store.get_record(outcome.rollback_id).checks[2]["detail"]
    assert backend.executed() == []


def test_a_silence_made_after_the_delivery_blocks_it(make_engine: Any) -> None:
    engine = make_engine(
        ALERTMANAGER_URL="http://127.0.0.1:9093",
        silences=lambda labels: (True, "silenced by s1 (ops: freeze)"),
    )
    outcome = fire(engine)
    assert (outcome.decision, outcome.reason) == ("skipped", "silenced")


def test_alertmanager_unreachable_for_the_recheck_proceeds(make_engine: Any) -> None:
    def broken(labels: dict[str, str]) -> tuple[bool, str]:
        raise ConnectionError("refused")

    engine = make_engine(ALERTMANAGER_URL="http://127.0.0.1:9093", silences=broken)
    outcome = fire(engine)
    assert outcome.decision == "rollback"
    checks = engine.store.get_record(outcome.rollback_id).checks
    assert "unreachable" in next(c for c in checks if c["check"] == "silenced")["detail"]


class TestApproval:
    def test_a_trigger_becomes_pending_and_holds_no_lock_or_slot(
        self, make_engine: Any, backend: Backend, collector: Collector
    ) -> None:
        engine = make_engine(REQUIRE_APPROVAL="true")
        outcome = fire(engine)
        assert (outcome.decision, outcome.reason) == ("pending_approval", "approval_required")
        assert engine.store.get_record(outcome.rollback_id).state == "pending_approval"
        assert engine.store.lock_owner("api") is None
        assert engine.store.window_counts("api")["hour"] == 0
        assert fire(engine).reason == "duplicate"
        assert collector.kinds() == ["pending_approval"]
        assert "approve" in collector.events[0].links

    def test_approving_runs_it_once_and_a_second_approval_is_a_conflict(
        self, make_engine: Any, backend: Backend
    ) -> None:
        engine = make_engine(REQUIRE_APPROVAL="true")
        rid = fire(engine).rollback_id
        record = engine.approve(rid, "alice")
        assert record.state == "running" and record.audit[-1]["actor"] == "alice"
        with pytest.raises(Conflict, match="not pending"):
            engine.approve(rid, "bob")
        assert engine.wait_idle(10)
        assert backend.executed() == [rid]
        assert engine.store.get_record(rid).state == "completed"

    def test_approval_is_blocked_by_the_safety_checks(self, make_engine: Any) -> None:
        engine = make_engine(REQUIRE_APPROVAL="true", COOLDOWN_MINUTES="60")
        first = fire(engine, starts_at="2026-11-26T10:00:00Z").rollback_id
        second = fire(engine, starts_at="2026-11-26T11:00:00Z").rollback_id
        engine.approve(first, "alice")
        assert engine.wait_idle(10)
        with pytest.raises(Conflict, match="cooldown"):
            engine.approve(second, "alice")
        assert engine.store.get_record(second).state == "pending_approval"

    def test_rejected_and_unknown_rollbacks_cannot_be_approved(self, make_engine: Any) -> None:
        engine = make_engine(REQUIRE_APPROVAL="true")
        rid = fire(engine).rollback_id
        assert engine.reject(rid, "carol").state == "rejected"
        with pytest.raises(Conflict):
            engine.approve(rid, "alice")
        with pytest.raises(Conflict):
            engine.reject(rid, "alice")
        with pytest.raises(NotFound):
            engine.approve("rb-nope", "alice")

    def test_a_pending_rollback_expires_after_the_timeout(
        self, make_engine: Any, collector: Collector
    ) -> None:
        engine = make_engine(REQUIRE_APPROVAL="true")
        rid = fire(engine).rollback_id
        assert sweep_once(engine)["expired"] == 0
        engine.store.add_deadline("pending", rid, time.time() - 1)
        assert sweep_once(engine)["expired"] == 1
        record = engine.store.get_record(rid)
        assert (record.state, record.reason) == ("expired", "approval_expired")
        assert "approval_expired" in collector.kinds()
        with pytest.raises(Conflict):
            engine.approve(rid, "alice")

    def test_a_resolved_alert_cancels_its_pending_rollback(self, make_engine: Any) -> None:
        engine = make_engine(REQUIRE_APPROVAL="true")
        rid = fire(engine).rollback_id
        fire(engine, status="resolved")
        assert engine.store.get_record(rid).state == "expired"

    def test_an_emergency_proceeds_after_the_veto_window_unless_rejected(
        self, make_engine: Any, backend: Backend
    ) -> None:
        engine = make_engine(REQUIRE_APPROVAL="true", EMERGENCY_VETO_MINUTES="5")
        rid = fire(engine).rollback_id
        assert engine.store.get_record(rid).veto_at is not None
        engine.store.add_deadline("veto", rid, time.time() - 1)
        assert sweep_once(engine)["vetoed"] == 1
        assert engine.wait_idle(10)
        record = engine.store.get_record(rid)
        assert record.state == "completed" and record.audit[-1]["actor"] == "veto-window"


def test_a_lost_lease_marks_the_rollback_interrupted_once(
    engine: Engine, backend: Backend, collector: Collector
) -> None:
    import threading

    backend.release = threading.Event()
    rid = fire(engine).rollback_id
    # Simulate a crashed worker: the lock's lease runs out with nobody renewing it.
    engine.store.client.delete(engine.store.key("lock", "api"))
    engine.store.client.zadd(engine.store.key("locks"), {"api": 1})
    before = failed("interrupted")
    assert sweep_once(engine)["interrupted"] == 1
    assert sweep_once(engine)["interrupted"] == 0
    backend.release.set()
    assert engine.wait_idle(10)
    record = engine.store.get_record(rid)
    assert (record.state, record.failed_stage) == ("interrupted", "interrupted")
    assert failed("interrupted") == before + 1
    assert collector.kinds().count("interrupted") == 1
    assert "revert99" not in str(record.target)  # the runner stopped before writing


class TestManual:
    def test_a_manual_rollback_ignores_blackout_and_approval_but_not_the_lock(
        self, make_engine: Any, backend: Backend
    ) -> None:
        import threading

        engine = make_engine(BLACKOUT_WINDOWS="Mon-Sun 00:00-24:00 UTC", REQUIRE_APPROVAL="true")
        backend.release = threading.Event()
        outcome, record = engine.manual_rollback(ManualRequest("api", reason="bad deploy"), "dave")
        assert (outcome.decision, record.state, record.actor) == ("rollback", "running", "dave")
        with pytest.raises(Conflict, match="locked"):
            engine.manual_rollback(ManualRequest("api", force=True), "dave")
        backend.release.set()
        assert engine.wait_idle(10)

    def test_force_passes_cooldown_and_rate_limits(self, engine: Engine) -> None:
        engine.manual_rollback(ManualRequest("api"), "dave")
        assert engine.wait_idle(10)
        with pytest.raises(Conflict, match="cooldown"):
            engine.manual_rollback(ManualRequest("api"), "dave")
        outcome, _ = engine.manual_rollback(ManualRequest("api", force=True), "dave")
        assert outcome.decision == "rollback"
        assert engine.wait_idle(10)

    def test_a_manual_dry_run_changes_nothing(self, engine: Engine, backend: Backend) -> None:
        outcome, record = engine.manual_rollback(ManualRequest("api", dry_run=True), "dave")
        assert (outcome.reason, record.state) == ("dry_run", "skipped")
        assert backend.executed() == []


def test_global_limit_skips_when_too_many_services_roll_back_at_once(
    make_engine: Any, backend: Backend, tmp_path: Any
) -> None:
    import threading

    config = tmp_path / "services.yml"
    config.write_text(
        "services:\n"
        + "".join(f"  s{i}: {{gitops: {{repo: acme/gitops, path: k8s/s{i}}}}}\n" for i in range(4))
    )
    engine = make_engine(MAX_CONCURRENT_ROLLBACKS="2", ROLLBACK_CONFIG=str(config))
    backend.release = threading.Event()
    reasons = [fire(engine, service=f"s{i}").reason for i in range(4)]
    backend.release.set()
    assert engine.wait_idle(10)
    assert reasons == ["passed", "passed", "global_limit", "global_limit"]


def test_the_budget_consumed_annotation_reaches_the_record_and_the_notification(
    engine: Engine, collector: Collector
) -> None:
    raw = alert()
    raw["annotations"]["budget_consumed"] = "0.9612"
    outcome = engine.handle_alert(parse_alert(raw, 0))
    assert engine.wait_idle(10)
    assert engine.store.get_record(outcome.rollback_id).trigger["consumed"] == 0.9612
    assert collector.events[0].consumed == 0.9612


def test_a_stopping_worker_stops_a_running_rollback_at_its_next_safe_point(
    engine: Engine, backend: Backend, collector: Collector
) -> None:
    import threading

    backend.release = threading.Event()
    rid = fire(engine).rollback_id
    stopper = threading.Thread(target=engine.shutdown, args=(0.2,))
    stopper.start()
    assert engine.runner.dispatcher.stopping.wait(10)  # the grace period has passed
    backend.release.set()  # the backend reaches its next external write and checks the lock
    stopper.join(10)
    record = engine.store.get_record(rid)
    assert (record.state, record.failed_stage) == ("interrupted", "interrupted")
    assert "shutting down" in record.error
    assert "revert99" not in str(record.target)
    assert engine.store.lock_owner("api") is None
    assert collector.kinds()[-1] == "interrupted"
