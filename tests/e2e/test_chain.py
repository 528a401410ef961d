"""End to end: an error burst travels the real Prometheus and Alertmanager into a rollback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from receiver.act.gitops_common import parse_trailers
from tests.e2e.conftest import Chain, ChainFactory, trigger_answer
from tests.e2e.stack import wait_until


@dataclass
class RolledBack:
    chain: Chain
    answer: dict[str, Any]
    record: dict[str, Any]
    completed_at: float


@pytest.fixture(scope="module")
def rolled_back(module_chains: ChainFactory) -> Iterator[RolledBack]:
    """An error burst on a service, followed to its completed rollback."""
    chain = module_chains.make("burst")
    chain.route(chain.serve())
    chain.breach()
    answer = chain.first_answer()
    assert answer["decision"] == "rollback", answer
    record = chain.wait_state(answer["rollback_id"], ("completed", "failed", "interrupted"))
    yield RolledBack(chain, answer, record, time.time())


def test_an_error_burst_commits_a_revert_on_the_gitops_repo(rolled_back: RolledBack) -> None:
    """The emergency trigger makes one new commit restoring the path, with its trailers."""
    chain, answer = rolled_back.chain, rolled_back.answer
    assert answer["reason"] == "passed"
    assert rolled_back.record["state"] == "completed", rolled_back.record
    commits = chain.new_commits()
    assert len(commits) == 1, f"expected one revert commit, got {commits}"
    revert = commits[0]
    assert chain.repo.parents(revert) == [chain.bad]
    path = f"k8s/{chain.service}/deployment.yaml"
    assert chain.repo.read(revert, path) == chain.repo.read(chain.good, path)
    assert chain.repo.changed_paths(revert) == [path]
    trailers = parse_trailers(chain.repo.message(revert))
    assert trailers["Rollback-Id"] == answer["rollback_id"]
    assert trailers["Rollback-Of"] == chain.bad
    assert trailers["Rollback-To"] == chain.good
    assert trailers["Alert-Fingerprint"] == answer["fingerprint"]


def test_argo_cd_deploys_the_revert_and_the_record_completes(rolled_back: RolledBack) -> None:
    """Argo CD ends Synced and Healthy at the revert commit; the history has every stage."""
    chain, record = rolled_back.chain, rolled_back.record
    revert = chain.new_commits()[0]
    assert chain.app.deployed == revert
    assert chain.app.health == "Healthy"
    stages = {stage["name"]: stage for stage in record["stages"]}
    for name in ("gitops", "argocd", "validation"):
        assert stages[name]["ok"] is True, record["stages"]
    assert record["rolled_back_from"]["commit"] == chain.bad
    assert record["target"]["commit"] == chain.good
    assert record["trigger"]["labels"]["alertname"] == "TriggerEmergencyRollback"
    history = chain.history()
    assert [r["id"] for r in history] == [record["id"]]


def test_rollback_completed_fires_in_prometheus_from_the_receivers_metrics(
    rolled_back: RolledBack,
) -> None:
    """Prometheus scrapes the receiver; the shipped RollbackCompleted rule fires for the service."""
    chain = rolled_back.chain
    chain.wait_firing("RollbackCompleted")
    assert not chain.stack.prometheus.firing("RollbackFailed", service=chain.service)
    # ... and the shipped routing takes it to people (slo-notify, a Slack receiver).
    wait_until(
        "Alertmanager's Slack message about RollbackCompleted for the service",
        lambda: [
            a
            for a in chain.stack.am_slack.arrivals
            if "RollbackCompleted" in json.dumps(a.body) and chain.service in json.dumps(a.body)
        ],
        20,
    )


def test_slack_and_pagerduty_hear_about_the_rollback(rolled_back: RolledBack) -> None:
    """Slack gets the start and the end; PagerDuty a trigger keyed by the rollback id."""
    chain, rollback_id = rolled_back.chain, rolled_back.answer["rollback_id"]
    messages = wait_until(
        "two Slack messages",
        lambda: chain.slack.messages if len(chain.slack.messages) >= 2 else None,
        10,
    )
    assert all(chain.service in str(m) for m in messages)
    events = wait_until("a PagerDuty event", lambda: chain.pagerduty.events or None, 10)
    triggers = [e for e in events if e["event_action"] == "trigger"]
    assert triggers and triggers[0]["dedup_key"] == rollback_id
    assert triggers[0]["payload"]["severity"] == "critical"  # emergency tier
    assert all(not chain.pagerduty.validate(e) for e in events)


def test_the_repeating_alert_does_not_start_a_second_rollback(rolled_back: RolledBack) -> None:
    """Errors go on, Alertmanager repeats the trigger; every repeat is the same episode."""
    chain, rollback_id = rolled_back.chain, rolled_back.answer["rollback_id"]
    before = len(chain.deliveries())
    repeats = chain.wait_deliveries(before + 2, timeout=20)[before:]
    for delivery in repeats:
        answer = trigger_answer(delivery, 0)
        assert (answer["decision"], answer["reason"]) == ("skipped", "duplicate"), answer
        assert answer["rollback_id"] == rollback_id
    assert len(chain.new_commits()) == 1
    assert [r["id"] for r in chain.history()] == [rollback_id]
