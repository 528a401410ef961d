"""End to end: "errors fell" is judged on traffic served after the rollback went live.

Two services breach at once. One heals the moment Argo CD deploys the revert (its record must
be `completed`, errors fell, and PagerDuty resolved within 90 s of validation, although the 5m
window still holds the breach); the other stays broken (`not_effective` at
STABILIZATION_SECONDS, PagerDuty paged again). Every wait is a bounded wait on state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Chain, ChainFactory
from tests.e2e.stack import wait_until

HEALED_WINDOW = "150"  # STABILIZATION_SECONDS: longer than the 90 s a heal may take
BROKEN_WINDOW = "90"  # the shortest STABILIZATION_SECONDS the receiver accepts


@dataclass
class Scenario:
    chain: Chain
    rollback_id: str


@dataclass
class Outcomes:
    healed: Scenario
    broken: Scenario


def _start(factory: ChainFactory, name: str, window: str) -> Scenario:
    chain = factory.make(name)
    chain.route(chain.serve(STABILIZATION_SECONDS=window))
    chain.breach()
    return Scenario(chain, "")


@pytest.fixture(scope="module")
def outcomes(module_chains: ChainFactory) -> Iterator[Outcomes]:
    healed = _start(module_chains, "heals", HEALED_WINDOW)
    broken = _start(module_chains, "stays-broken", BROKEN_WINDOW)
    for scenario in (healed, broken):
        answer = scenario.chain.first_answer()
        assert answer["decision"] == "rollback", answer
        scenario.rollback_id = answer["rollback_id"]
    chain = healed.chain
    wait_until(
        "Argo CD to deploy the revert of the healing service",
        lambda: chain.new_commits() and chain.app.deployed == chain.new_commits()[0],
        30,
        detail=chain.diagnostics,
    )
    chain.stack.exporter.heal(chain.service)  # the good revision serves without errors
    yield Outcomes(healed, broken)


def _validated_at(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["details"]["validated_at"]).timestamp()


def test_a_heal_completes_and_resolves_pagerduty_within_90s_of_validation(
    outcomes: Outcomes,
) -> None:
    chain, rollback_id = outcomes.healed.chain, outcomes.healed.rollback_id
    running = wait_until(
        "the healing rollback to be validated",
        lambda: (r := chain.record(rollback_id)).get("details", {}).get("validated_at") and r,
        40,
        detail=chain.diagnostics,
    )
    validated_at = _validated_at(running)
    record = chain.wait_state(rollback_id, ("completed", "failed", "interrupted"), timeout=100)
    assert record["state"] == "completed", record
    assert record["details"]["errors_fell"] is True, record["details"]
    assert record["not_effective"] is False
    resolves = wait_until(
        "PagerDuty to be resolved",
        lambda: [
            e
            for e in chain.pagerduty.events
            if e["event_action"] == "resolve" and e["dedup_key"] == rollback_id
        ],
        10,
    )
    assert len(resolves) == 1
    assert datetime.fromisoformat(record["finished_at"]).timestamp() - validated_at < 90
    # At validation the 5m window (what the check read before) held the breach.
    answer = requests.get(
        f"{chain.stack.prometheus.url}/api/v1/query",
        params={
            "query": f'slo:sli_error:ratio_rate5m{{service="{chain.service}"}} > 0.01',
            "time": f"{validated_at:.3f}",
        },
        timeout=5,
    )
    assert answer.json()["data"]["result"], answer.text


def test_a_service_that_stays_broken_is_not_effective_at_the_window(outcomes: Outcomes) -> None:
    chain, rollback_id = outcomes.broken.chain, outcomes.broken.rollback_id
    record = chain.wait_state(rollback_id, ("completed", "failed", "interrupted"), timeout=140)
    assert record["state"] == "completed", record
    assert record["not_effective"] is True
    assert record["details"]["errors_fell"] is False
    finished = datetime.fromisoformat(record["finished_at"]).timestamp()
    assert finished - _validated_at(record) >= float(BROKEN_WINDOW) - 1
    pages = wait_until(
        "PagerDuty paged again at critical",
        lambda: [
            e
            for e in chain.pagerduty.events
            if e["event_action"] == "trigger"
            and e["dedup_key"] == rollback_id
            and e["payload"]["custom_details"].get("kind") == "not_effective"
        ],
        10,
    )
    assert pages[0]["payload"]["severity"] == "critical"
    assert not [e for e in chain.pagerduty.events if e["event_action"] == "resolve"]
    assert any("errors did not fall" in str(m) for m in chain.slack.messages)
