"""End to end: DRY_RUN changes nothing; REQUIRE_APPROVAL waits for a human, then rolls back."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.e2e.conftest import Chain, trigger_answer
from tests.e2e.stack import wait_until


def test_dry_run_records_what_it_would_restore_and_changes_nothing(
    make_chain: Callable[..., Chain],
) -> None:
    """DRY_RUN=true: the decision and target are recorded; no commit, no Argo CD operation."""
    chain = make_chain("dryrun")
    chain.route(chain.serve(DRY_RUN="true"))
    chain.breach()
    answer = chain.first_answer()
    assert (answer["decision"], answer["reason"]) == ("skipped", "dry_run"), answer
    record = chain.record(answer["rollback_id"])
    assert record["state"] == "skipped"
    assert record["target"]["commit"] == chain.good
    repeat = trigger_answer(chain.wait_deliveries(2, timeout=20)[1], 0)
    assert (repeat["decision"], repeat["reason"]) == ("skipped", "duplicate"), repeat
    assert chain.new_commits() == []
    assert chain.app.deployed == chain.bad
    assert chain.argocd.faults.count("POST", r"/sync$") == 0
    assert [r["id"] for r in chain.history()] == [answer["rollback_id"]]


def test_require_approval_holds_the_rollback_until_approved_with_the_cli(
    make_chain: Callable[..., Chain],
) -> None:
    """REQUIRE_APPROVAL=true: pending, Slack asks; `rollback-receiver approve ID` runs it."""
    chain = make_chain("approval")
    chain.route(chain.serve(REQUIRE_APPROVAL="true", APPROVAL_TIMEOUT_MINUTES="10"))
    chain.breach()
    answer = chain.first_answer()
    assert (answer["decision"], answer["reason"]) == ("pending_approval", "approval_required")
    rollback_id = answer["rollback_id"]
    assert chain.record(rollback_id)["state"] == "pending_approval"
    wait_until(
        "a Slack message asking for approval",
        lambda: [m for m in chain.slack.messages if rollback_id in json.dumps(m)],
        10,
    )
    repeat = trigger_answer(chain.wait_deliveries(2, timeout=20)[1], 0)
    assert repeat["rollback_id"] == rollback_id, repeat
    assert chain.new_commits() == []

    approved = chain.cli("approve", rollback_id)
    assert approved.returncode == 0, approved.stderr
    assert rollback_id in approved.stdout
    record = chain.wait_state(rollback_id, ("completed", "failed", "interrupted"))
    assert record["state"] == "completed", record
    assert "e2e-operator" in str(record["actor"])
    assert len(chain.new_commits()) == 1
    again = chain.cli("approve", rollback_id)
    assert again.returncode == 1 and "409" in again.stderr, (again.stdout, again.stderr)
