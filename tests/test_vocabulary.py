"""The typed vocabulary carries the contract's strings; what a backend did is read one way."""

from __future__ import annotations

from prometheus_client import REGISTRY

from receiver import metrics
from receiver.decide.vocabulary import (
    ESCALATING_REASONS,
    METRIC_SKIP_REASONS,
    SAFETY_REASONS,
    Decision,
    Origin,
    SkipReason,
)
from receiver.state.history import Restoration, RollbackRecord, StageName, State, iso

# The contract's lists, copied ("Metrics", "History", "Decisions").
CONTRACT_SKIP_REASONS = (
    "disabled tier_disabled dry_run duplicate locked cooldown rate_limit_hour rate_limit_day "
    "blackout silenced approval_expired rejected already_rolled_back no_recent_change "
    "autosync_enabled global_limit no_target invalid_alert internal_error"
).split()
CONTRACT_STATES = (
    "pending_approval running completed failed interrupted skipped rejected expired".split()
)
CONTRACT_STAGES = ["gitops", "argocd", "validation", "interrupted"]


def test_the_enums_carry_the_contracts_strings() -> None:
    assert [str(r) for r in METRIC_SKIP_REASONS] == CONTRACT_SKIP_REASONS
    assert [str(s) for s in State] == CONTRACT_STATES
    assert [str(s) for s in StageName] == CONTRACT_STAGES
    assert {str(d) for d in Decision} == {"rollback", "pending_approval", "ignored", "skipped"}
    assert {str(o) for o in Origin} == {"alert", "approval", "manual", "manual_force"}
    assert SkipReason.COOLDOWN == "cooldown"  # a member is its string


def test_escalating_and_safety_reasons_are_skip_reasons_the_metric_knows() -> None:
    assert ESCALATING_REASONS == {"already_rolled_back", "no_recent_change", "global_limit"}
    assert not ESCALATING_REASONS & SAFETY_REASONS
    assert SAFETY_REASONS <= set(METRIC_SKIP_REASONS)


def test_every_skip_reason_of_the_contract_is_pre_created_for_a_configured_service() -> None:
    metrics.precreate(["vocab-svc"])
    for reason in CONTRACT_SKIP_REASONS:
        value = REGISTRY.get_sample_value(
            "rollback_skipped_total", {"service": "vocab-svc", "reason": reason}
        )
        assert value == 0.0, reason
    for stage in CONTRACT_STAGES:
        labels = {"service": "vocab-svc", "tier": "critical", "stage": stage}
        assert REGISTRY.get_sample_value("rollback_failed_total", labels) == 0.0


def test_the_live_revision_is_the_revert_commit_else_what_argo_cd_deployed_else_the_target() -> (
    None
):
    gitops = Restoration.from_details(
        {"rolled_back_from": "bad1", "target_commit": "good1", "revert_commit": "rev1"}
    )
    assert (gitops.rolled_back_from(), gitops.live_revision()) == ("bad1", "rev1")
    argocd = Restoration.from_details({"argocd_from_revision": "bad2", "argocd_revision": "good2"})
    assert (argocd.rolled_back_from(), argocd.live_revision()) == ("bad2", "good2")
    pull_request = Restoration.from_details(
        {"target_commit": "good3", "pull_request": "https://github.test/acme/gitops/pull/7"}
    )
    assert pull_request.live_revision() == "good3"
    assert Restoration().live_revision() is None


def test_a_record_absorbs_what_the_backends_did_and_answers_the_same_restoration() -> None:
    record = RollbackRecord(
        id="rb-1",
        service="api",
        namespace="production",
        tier="critical",
        decision="rollback",
        reason="passed",
        state="running",
        trigger={},
        created_at=iso(),
    )
    done = Restoration.from_details(
        {
            "rolled_back_from": "bad1",
            "target_commit": "good1",
            "revert_commit": "rev1",
            "argocd_revision": "rev1",
            "argocd_history_id": "12",
        }
    )
    record.absorb(done)
    assert record.rolled_back_from == {"commit": "bad1"}
    assert record.target == {
        "commit": "good1",
        "revert_commit": "rev1",
        "argocd_revision": "rev1",
        "argocd_history_id": "12",
    }
    assert record.restoration() == done
    assert record.to_dict()["live_revision"] == "rev1"
    assert RollbackRecord.from_json(record.to_json()).restoration() == done
