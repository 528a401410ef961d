"""The shipped rules beside Sloth's and Pyrra's generated rules, in promtool and a real Prometheus.

Facts relied on (sources):
- Sloth records slo:sli_error:ratio_rate<window> (5m 30m 1h 2h 6h 1d 3d and the period, 30d),
  slo:objective:ratio, slo:error_budget:ratio, slo:time_period:days, slo:current_burn_rate:ratio,
  slo:period_burn_rate:ratio and slo:period_error_budget_remaining:ratio, each labelled
  sloth_id, sloth_service, sloth_slo (and the SLO's own labels), never `service`; its alerts
  carry sloth_severity page|ticket, the page one without `for`
  (slok/sloth examples/_gen/getting-started.yml).
- Pyrra records <metric>:burnrate<window> labelled slo and the total's equality matchers, and
  alerts ErrorBudgetBurn with severity critical|warning, short, long, exhaustion; the fastest
  window (5m/1h, factor 14) has `for: 2m` (pyrra-dev/pyrra slo/rules.go, slo/rules_test.go).
The reproductions are tests/rules/sloth-slos.yml and tests/rules/pyrra-slos.yml.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from receiver.check import CannotEvaluate, read_budget
from receiver.cli.evaluate import check
from receiver.clients.prometheus import PrometheusClient
from tests.procs import SHIPPED_RULES, Prometheus
from tests.prom import Exporter
from tests.tools import run, tool

RULES = Path(__file__).resolve().parent / "rules"
SLO_TOOL_RULES = (RULES / "sloth-slos.yml", RULES / "pyrra-slos.yml")
# service -> error ratio. checkout, payments: Sloth SLOs; search, catalog: Pyrra; api: neither.
SERVICES = {"api": 0.5, "checkout": 0.5, "payments": 0.0, "search": 0.5, "catalog": 0.0}


@pytest.mark.parametrize("path", SLO_TOOL_RULES, ids=lambda p: p.name)
def test_the_reproduced_sloth_and_pyrra_rules_pass_promtool_check(path: Path) -> None:
    """The reproduced generated rule files are valid Prometheus rules."""
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_shipped_triggers_sloth_and_pyrra_alerts_all_fire_in_one_promtool_test() -> None:
    """promtool: with both tools' rules loaded, every trigger fires for the burning services."""
    result = run(tool("promtool"), "test", "rules", str(RULES / "slo-tools-test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus with the shipped, Sloth and Pyrra rules, scraping five services."""
    with Exporter() as exporter:
        for service, ratio in SERVICES.items():
            exporter.traffic.set(service, rps=100, error_ratio=ratio)
        prom = Prometheus(
            tmp_path_factory.mktemp("slo-tools"),
            targets=[exporter.address],
            rule_files=(*SHIPPED_RULES, *SLO_TOOL_RULES),
        ).start()
        try:
            prom.wait_for(
                'slo:period_error_budget_remaining:ratio{sloth_service="checkout"}', timeout=60
            )
            yield prom
        finally:
            prom.stop()


def rule_groups(prom: Prometheus) -> list[dict[str, Any]]:
    with requests.get(f"{prom.url}/api/v1/rules", timeout=5) as response:
        return list(response.json()["data"]["groups"])


def alerts_named(prom: Prometheus, alertname: str) -> list[dict[str, Any]]:
    with requests.get(f"{prom.url}/api/v1/alerts", timeout=5) as response:
        found = response.json()["data"]["alerts"]
    return [a for a in found if a["labels"].get("alertname") == alertname]


def wait_for_alerts(
    prom: Prometheus, alertname: str, states: set[str], services: set[str], label: str
) -> list[dict[str, Any]]:
    """Poll until alerts of that name in `states` cover exactly `services` (by `label`)."""
    deadline = time.monotonic() + 60
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = [a for a in alerts_named(prom, alertname) if a["state"] in states]
        if {a["labels"].get(label) for a in seen} == services:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"{alertname} {states}: wanted {services}, got {seen!r}")


def test_every_rule_evaluates_without_error_beside_sloth_and_pyrra(prometheus: Prometheus) -> None:
    """No rule of any group fails ("found duplicate series for the match group" included)."""
    deadline = time.monotonic() + 30
    while True:
        rules = [r for g in rule_groups(prometheus) for r in g["rules"]]
        if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert broken == []
    assert len({g["file"] for g in rule_groups(prometheus)}) == len(SHIPPED_RULES) + 2


def test_the_shipped_emergency_trigger_fires_for_every_burning_service(
    prometheus: Prometheus,
) -> None:
    """TriggerEmergencyRollback fires for api, checkout and search, and only with `service`."""
    fired = wait_for_alerts(
        prometheus, "TriggerEmergencyRollback", {"firing"}, {"api", "checkout", "search"}, "service"
    )
    assert all(a["labels"]["rollback_tier"] == "emergency" for a in fired)
    assert not any("sloth_service" in a["labels"] for a in fired)


def test_the_sloth_page_alert_fires_for_the_burning_sloth_slo_only(prometheus: Prometheus) -> None:
    """Sloth's page alert (no `for`) fires for checkout, with sloth_service and no `service`."""
    [page] = [
        a
        for a in wait_for_alerts(
            prometheus, "CheckoutAvailabilitySLO", {"firing"}, {"checkout"}, "sloth_service"
        )
        if a["labels"]["sloth_severity"] == "page"
    ]
    assert "service" not in page["labels"]
    assert alerts_named(prometheus, "PaymentsAvailabilitySLO") == []


def test_pyrra_error_budget_burn_goes_active_for_the_burning_pyrra_slo_only(
    prometheus: Prometheus,
) -> None:
    """Pyrra's fastest ErrorBudgetBurn (critical, 5m/1h) is active for search, not catalog."""
    active = wait_for_alerts(
        prometheus, "ErrorBudgetBurn", {"pending", "firing"}, {"search"}, "service"
    )
    fast = [a for a in active if a["labels"]["short"] == "5m"]
    assert [a["labels"]["severity"] for a in fast] == ["critical"]
    assert {a["labels"]["slo"] for a in active} == {"search-availability"}


# -- check --source sloth -----------------------------------------------------------------


def sloth_check(prom: Prometheus, *args: str) -> Any:
    env = {"PROMETHEUS_URL": prom.url, "NAMESPACE": "production", "SERVICE_NAME": "api"}
    return CliRunner().invoke(check, ["--source", "sloth", *args], env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    ("service", "code", "tier"), [("checkout", 3, "emergency"), ("payments", 0, "healthy")]
)
def test_check_source_sloth_exits_with_the_tier_of_the_sloth_slo(
    prometheus: Prometheus, service: str, code: int, tier: str
) -> None:
    """`check --source sloth` reads Sloth's period budget; the exit code is the tier."""
    result = sloth_check(prometheus, "--service", service, "--json")
    assert result.exit_code == code, result.output
    report = json.loads(result.stdout)
    assert (report["source"], report["tier"], report["slo"]) == (
        "sloth",
        tier,
        "requests-availability",
    )
    assert report["error_budget"] == pytest.approx(0.001)
    assert report["slo_window"] == "30d"


def test_check_source_sloth_prints_the_sloth_slo_in_its_table(prometheus: Prometheus) -> None:
    """The human table names the Sloth SLO it read and the emergency tier."""
    result = sloth_check(prometheus, "--service", "checkout")
    assert result.exit_code == 3, result.output
    assert "Sloth recording rules (sloth_slo requests-availability)" in result.stdout
    assert "EMERGENCY" in result.stdout


def test_sloth_budget_matches_sloths_own_remaining_budget(prometheus: Prometheus) -> None:
    """Consumed is 1 - slo:period_error_budget_remaining:ratio, burn rates ratio / budget."""
    client = PrometheusClient(prometheus.url, timeout=5)
    try:
        report = read_budget(
            client,
            "checkout",
            "production",
            error_budget=0.001,
            slo_window="30d",
            source="sloth",
            slo="requests-availability",
        )
        remaining = client.query_value(
            'slo:period_error_budget_remaining:ratio{sloth_service="checkout"}'
        )
    finally:
        client.session.close()
    assert remaining is not None
    assert report.consumed == pytest.approx(1 - remaining, rel=0.05)
    assert report.consumed == pytest.approx(500, rel=0.05)
    assert report.burn_rates["5m"] == pytest.approx(500, rel=0.05)
    assert list(report.burn_rates)[:3] == ["5m", "30m", "1h"]


def test_sloth_source_cannot_evaluate_an_unknown_slo_or_a_service_without_sloth(
    prometheus: Prometheus,
) -> None:
    """An unknown --slo, or a service Sloth does not know, is exit 4 naming what is missing."""
    client = PrometheusClient(prometheus.url, timeout=5)
    try:
        with pytest.raises(CannotEvaluate, match="its SLOs: requests-availability"):
            read_budget(
                client,
                "checkout",
                "production",
                error_budget=0.001,
                slo_window="30d",
                source="sloth",
                slo="latency",
            )
    finally:
        client.session.close()
    result = sloth_check(prometheus, "--service", "search")
    assert result.exit_code == 4
    assert "sloth_service=search" in result.output


def test_check_source_sloth_takes_the_slo_name(prometheus: Prometheus) -> None:
    """`--slo NAME` picks the Sloth SLO; an SLO the service does not have cannot be evaluated."""
    named = sloth_check(prometheus, "--service", "checkout", "--slo", "requests-availability")
    assert named.exit_code == 3, named.output
    missing = sloth_check(prometheus, "--service", "checkout", "--slo", "no-such-slo")
    assert missing.exit_code == 4, missing.output


def test_check_refuses_slo_without_source_sloth_and_an_unreachable_prometheus_is_exit_4() -> None:
    """`--slo` means a Sloth SLO; without --source sloth it is refused rather than ignored."""
    env = {"PROMETHEUS_URL": "http://127.0.0.1:9", "SERVICE_NAME": "api"}
    runner = CliRunner()
    refused = runner.invoke(
        check, ["--service", "checkout", "--slo", "requests-availability"], env=env
    )
    unreachable = runner.invoke(check, ["--source", "sloth", "--service", "checkout"], env=env)
    assert refused.exit_code == 4 and "add --source sloth" in refused.output
    assert unreachable.exit_code == 4 and "Prometheus unreachable" in unreachable.output
    assert "Traceback" not in refused.output + unreachable.output
