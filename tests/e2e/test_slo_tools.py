"""End to end: Sloth's and Pyrra's alerts, mapped by `triggers:`, roll back the right service.

A Prometheus of its own loads the shipped rules beside tests/rules/sloth-slos.yml and
tests/rules/pyrra-slos.yml (their SLO services renamed to the scenario's; Pyrra's 30s group
interval and 2m `for` shortened so the fast-burn alert fires within seconds, nothing else
changed), scrapes the session's exporter, and sends to an Alertmanager of its own: the shipped
configuration with two routes put first, on the tools' labels, to the receiver. The shipped
routes go to a sink, so only the Sloth/Pyrra alerts reach the receiver.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Chain, Stack
from tests.e2e.stack import (
    Arrival,
    BareSink,
    ChainPrometheus,
    Router,
    shipped_alertmanager_config,
    wait_until,
)
from tests.procs import SHIPPED_RULES, Alertmanager

RULES = Path(__file__).resolve().parents[1] / "rules"
SLOTH_SERVICE = "checkout"  # the Sloth SLO of tests/rules/sloth-slos.yml that is breached
PYRRA_SERVICE = "search"  # the Pyrra SLO of tests/rules/pyrra-slos.yml that is breached
SLOTH_ALERT = "CheckoutAvailabilitySLO"
PYRRA_ALERT = "ErrorBudgetBurn"
TRIGGERS = {
    "triggers": [
        {
            "match": {"sloth_severity": "page"},
            "tier": "emergency",
            "service_label": "sloth_service",
        },
        {"match": {"alertname": PYRRA_ALERT, "severity": "critical"}, "tier": "critical"},
    ]
}
TOOL_ROUTES = [
    {
        "receiver": "slo-tools",
        "matchers": ['sloth_severity="page"'],
        "group_by": ["alertname", "sloth_service", "sloth_slo"],
        "group_wait": "0s",
    },
    {
        "receiver": "slo-tools",
        "matchers": [f'alertname="{PYRRA_ALERT}"', 'severity="critical"'],
        "group_by": ["alertname", "service", "slo"],
        "group_wait": "1s",
    },
]


@dataclass
class ToolStack:
    """The Prometheus with the three rule sets, its Alertmanager, and the router to receivers."""

    prometheus: ChainPrometheus
    alertmanager: Alertmanager
    router: Router


def renamed_rules(source: Path, service: str, as_service: str, target: Path) -> Path:
    """A rule file with one SLO's service renamed; Pyrra's interval and 2m `for` shortened."""
    text = re.sub(rf"\b{service}\b", as_service, source.read_text(encoding="utf-8"))
    text = text.replace("  interval: 30s\n", "").replace("for: 2m0s", "for: 3s")
    target.write_text(text, encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def tool_stack(stack: Stack, module_chains: Any) -> Iterator[ToolStack]:
    tmp = stack.tmp
    sink, router = BareSink().start(), Router().start()
    started: list[Any] = [sink, router]
    config = shipped_alertmanager_config(
        sink.base_url + "/webhook", tmp / "webhook-token", tmp / "slack-url"
    )
    shipped_receiver = next(r for r in config["receivers"] if r.get("webhook_configs"))
    tools_receiver = yaml.safe_load(yaml.safe_dump(shipped_receiver))
    tools_receiver["name"] = "slo-tools"
    tools_receiver["webhook_configs"][0]["url"] = router.url
    config["receivers"].append(tools_receiver)
    config["route"]["routes"] = [
        {**r, "group_interval": "1s", "repeat_interval": "3s"} for r in TOOL_ROUTES
    ] + config["route"]["routes"]
    try:
        alertmanager = Alertmanager(config).start()
        started.append(alertmanager)
        sloth_service = module_chains.make("sloth").service
        pyrra_service = module_chains.make("pyrra").service
        rule_files = [
            *SHIPPED_RULES,
            renamed_rules(
                RULES / "sloth-slos.yml", SLOTH_SERVICE, sloth_service, tmp / "sloth-e2e.yml"
            ),
            renamed_rules(
                RULES / "pyrra-slos.yml", PYRRA_SERVICE, pyrra_service, tmp / "pyrra-e2e.yml"
            ),
        ]
        prometheus = ChainPrometheus(
            stack.exporter.address, [f"127.0.0.1:{alertmanager.port}"], rule_files
        ).start()
        started.append(prometheus)
        yield ToolStack(prometheus, alertmanager, router)
    finally:
        for part in reversed(started):
            part.stop()


def chain_named(module_chains: Any, prefix: str) -> Chain:
    return next(c for c in module_chains.chains if c.service.startswith(prefix + "-"))


def serve_with_triggers(chain: Chain, tools: ToolStack) -> None:
    config = chain.tmp / f"{chain.service}-rollback-config.yml"
    config.write_text(yaml.safe_dump(TRIGGERS), encoding="utf-8")
    receiver = chain.serve(workers=1, ROLLBACK_CONFIG=str(config))
    tools.router.register(chain.service, receiver.url)


def tool_answer(chain: Chain, tools: ToolStack, alertname: str) -> dict[str, Any]:
    """The receiver's answer for the first delivery of `alertname` it answered 200."""

    def answered() -> dict[str, Any] | None:
        arrivals: list[Arrival] = tools.router.for_service(chain.service, alertname)
        for arrival in arrivals:
            if 200 in arrival.statuses and isinstance(arrival.answers[0], dict):
                found = [a for a in arrival.answers[0]["alerts"] if a["alertname"] == alertname]
                if found:
                    return dict(found[0])
        return None

    return wait_until(
        f"{alertname} delivered for {chain.service}", answered, 45, detail=chain.diagnostics
    )


def rolls_back(chain: Chain, tools: ToolStack, alertname: str) -> dict[str, Any]:
    """Breach the service; the tool's alert arrives and its rollback completes."""
    serve_with_triggers(chain, tools)
    chain.breach()
    answer = tool_answer(chain, tools, alertname)
    assert (answer["decision"], answer["service"]) == ("rollback", chain.service), answer
    record = chain.wait_state(answer["rollback_id"], ("completed", "failed", "interrupted"))
    assert record["state"] == "completed", record
    assert len(chain.new_commits()) == 1  # one revert on the service's GitOps path
    # The shipped triggers still fire for the same breach with Sloth and Pyrra loaded.
    wait_until(
        f"TriggerEmergencyRollback beside {alertname}",
        lambda: tools.prometheus.firing("TriggerEmergencyRollback", service=chain.service),
        20,
    )
    return record


@pytest.mark.slow
def test_the_sloth_page_alert_rolls_back_the_service_in_sloth_service(
    tool_stack: ToolStack, module_chains: Any
) -> None:
    """Sloth's page alert (no `service`, `sloth_service` names it) rolls back as an emergency."""
    chain = chain_named(module_chains, "sloth")
    record = rolls_back(chain, tool_stack, SLOTH_ALERT)
    assert record["tier"] == "emergency"
    assert record["service"] == chain.service


@pytest.mark.slow
def test_the_pyrra_fast_burn_alert_rolls_back_its_service(
    tool_stack: ToolStack, module_chains: Any
) -> None:
    """Pyrra's critical ErrorBudgetBurn (service label `service`) rolls back as critical."""
    chain = chain_named(module_chains, "pyrra")
    record = rolls_back(chain, tool_stack, PYRRA_ALERT)
    assert record["tier"] == "critical"
    assert record["service"] == chain.service
