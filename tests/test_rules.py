"""The Prometheus rules in alerts/: promtool checks, unit tests and house rules for every alert."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import run, tool

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*-test.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
TRIGGERS = {"TriggerCriticalRollback", "TriggerEmergencyRollback"}


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def unit_cases() -> list[dict[str, Any]]:
    return [
        case
        for path in TEST_FILES
        for group in yaml.safe_load(path.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
    ]


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the runbook's headings."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def test_rule_files_and_unit_tests_exist() -> None:
    """alerts/ ships rule files and promtool unit tests for them."""
    assert len(RULE_FILES) >= 4
    assert len(TEST_FILES) >= 2


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_passes_promtool_check_rules(path: Path) -> None:
    """Every rule file passes `promtool check rules`."""
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    """Every promtool unit test file in alerts/tests passes."""
    result = run(tool("promtool"), "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check is not vacuous: promtool fails on a rule with bad PromQL."""
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n")
    result = run(tool("promtool"), "check", "rules", str(bad))
    assert result.returncode != 0


def test_the_contract_alerts_exist() -> None:
    """The alerts that the contract and the receiver name are all defined."""
    names = {rule["alert"] for rule in alerts()}
    assert {
        "ErrorBudgetWarning",
        "TriggerCriticalRollback",
        "TriggerEmergencyRollback",
        "SLOAvailabilityLow",
        "SLOErrorRateHigh",
        "SLOLatencyP95High",
        "SLOLatencyP99High",
        "RollbackInProgress",
        "RollbackCompleted",
        "RollbackFailed",
        "RollbackReceiverDown",
        "RollbackReceiverNotReady",
        "RollbackWebhookErrors",
    } <= names


def test_every_alert_has_severity_summary_description_and_a_runbook_anchor() -> None:
    """Each alert has a severity, summary, description and a runbook_url into docs/runbook.md."""
    anchors = runbook_anchors()
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"info", "warning", "critical"}, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name
        url = annotations.get("runbook_url", "")
        assert "/docs/runbook.md#" in url, name
        assert url.rsplit("#", 1)[1] in anchors, f"{name}: no runbook section for {url}"


def test_slo_and_rollback_alerts_describe_the_consumed_budget() -> None:
    """Alerts about a service show its consumed error budget in the description."""
    for rule in alerts():
        if rule["labels"].get("service") == "rollback-receiver":
            continue
        description = rule["annotations"]["description"]
        assert "slo:error_budget_consumed:ratio" in description, rule["alert"]


def test_trigger_alerts_carry_a_rollback_tier_and_others_do_not() -> None:
    """rollback_tier (critical or emergency) marks exactly the alerts the receiver acts on."""
    for rule in alerts():
        tier = rule.get("labels", {}).get("rollback_tier")
        if rule["alert"] == "TriggerEmergencyRollback":
            assert tier == "emergency"
        elif rule["alert"] in TRIGGERS or rule["alert"].startswith("SLO"):
            assert tier == "critical", rule["alert"]
        else:
            assert tier is None, rule["alert"]


def test_the_emergency_trigger_has_no_for_delay() -> None:
    """TriggerEmergencyRollback fires on the first evaluation that meets it."""
    emergency = next(r for r in alerts() if r["alert"] == "TriggerEmergencyRollback")
    assert "for" not in emergency


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    """For every alert, one unit test case expects it to fire and one expects it not to."""
    firing: set[str] = set()
    silent: set[str] = set()
    for case in unit_cases():
        (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "no firing case"
    assert names - silent == set(), "no silent case"


def test_every_expected_alert_carries_service_namespace_and_severity() -> None:
    """Unit tests pin service, namespace and severity on every alert they expect."""
    for case in unit_cases():
        for alert in case.get("exp_alerts") or []:
            labels = alert["exp_labels"]
            assert {"service", "namespace", "severity"} <= labels.keys(), case["alertname"]
            if case["alertname"] in TRIGGERS or case["alertname"].startswith("SLO"):
                assert labels.get("rollback_tier") in {"critical", "emergency"}
