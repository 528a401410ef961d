"""`rollback-receiver check` against a real Prometheus fed by a controllable exporter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from receiver.check import BudgetReport, read_budget, tier_of
from receiver.cli.evaluate import check
from receiver.clients.prometheus import PrometheusClient
from tests.procs import SHIPPED_RULES, Prometheus, free_port
from tests.prom import Exporter

ERROR_BUDGET = 0.001
# service -> error ratio; consumption = ratio / ERROR_BUDGET (the exporter's ratio is exact).
SERVICES = {"calm": 0.0001, "warn": 0.0006, "crit": 0.00085, "emer": 0.5}
EXPECTED = {  # service -> (tier, exit code)
    "calm": ("healthy", 0),
    "warn": ("warning", 1),
    "crit": ("critical", 2),
    "emer": ("emergency", 3),
}


class Proms:
    def __init__(self, rules: Prometheus, raw: Prometheus, exporter: Exporter) -> None:
        self.rules, self.raw, self.exporter = rules, raw, exporter


@pytest.fixture(scope="module")
def proms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proms]:
    """One Prometheus with the shipped rules and one without, scraping the same exporter."""
    tmp = tmp_path_factory.mktemp("check")
    with Exporter() as exporter:
        for service, ratio in SERVICES.items():
            exporter.traffic.set(service, rps=1000, error_ratio=ratio)
        exporter.traffic.set("idle", rps=0)
        rules = Prometheus(tmp, targets=[exporter.address], rule_files=SHIPPED_RULES).start()
        try:
            raw = Prometheus(tmp, targets=[exporter.address]).start()
            try:
                count = len(SERVICES)
                rules.wait_for(
                    "slo:error_budget_consumed:ratio >= 0"
                    " and on (service) slo:burn_rate:ratio_rate5m >= 0",
                    lambda r: len(r) == count,
                )
                raw.wait_for(
                    'sum by (service) (increase(http_requests_total{code="200"}[1m])) > 0',
                    lambda r: len(r) == count,
                )
                yield Proms(rules, raw, exporter)
            finally:
                raw.stop()
        finally:
            rules.stop()


def run_check(url: str, *args: str) -> Any:
    env = {
        "PROMETHEUS_URL": url,
        "ERROR_BUDGET": str(ERROR_BUDGET),
        "SLO_WINDOW": "30d",
        "NAMESPACE": "production",
        "SERVICE_NAME": "calm",
    }
    return CliRunner().invoke(check, list(args), env=env, catch_exceptions=False)


def as_json(result: Any) -> dict[str, Any]:
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_exit_code_is_the_tier_of_the_consumption_read_from_the_recording_rules(
    proms: Proms, service: str
) -> None:
    result = run_check(proms.rules.url, "--service", service, "--json")
    report = as_json(result)
    assert (report["tier"], result.exit_code) == EXPECTED[service]
    assert report["exit_code"] == result.exit_code
    assert report["source"] == "recording_rules"
    assert report["consumed"] == pytest.approx(SERVICES[service] / ERROR_BUDGET, rel=1e-3)
    assert report["remaining"] == pytest.approx(max(0.0, 1 - report["consumed"]))
    # A constant error ratio burns at the same rate on every window.
    assert {"5m", "30m", "1h", "6h"} <= set(report["burn_rates"])
    for rate in report["burn_rates"].values():
        assert rate == pytest.approx(SERVICES[service] / ERROR_BUDGET, rel=1e-3)
    assert (report["error_budget"], report["slo_window"]) == (pytest.approx(0.001), "30d")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_without_the_recording_rules_raw_promql_gives_the_same_tier(
    proms: Proms, service: str
) -> None:
    result = run_check(proms.raw.url, "--service", service, "--json")
    report = as_json(result)
    assert report["source"] == "raw_promql"
    assert (report["tier"], result.exit_code) == EXPECTED[service]
    assert report["consumed"] == pytest.approx(SERVICES[service] / ERROR_BUDGET, rel=1e-3)
    assert report["burn_rates"]["5m"] == pytest.approx(SERVICES[service] / ERROR_BUDGET, rel=1e-3)


def test_raw_promql_can_be_forced_where_the_rules_exist_and_agrees_with_them(proms: Proms) -> None:
    client = PrometheusClient(proms.rules.url)
    try:
        kwargs: dict[str, Any] = {"error_budget": ERROR_BUDGET, "slo_window": "30d"}
        by_rules = read_budget(client, "crit", "production", source="rules", **kwargs)
        by_raw = read_budget(client, "crit", "production", source="raw", **kwargs)
    finally:
        client.session.close()
    assert (by_rules.source, by_raw.source) == ("recording_rules", "raw_promql")
    assert by_raw.consumed == pytest.approx(by_rules.consumed, rel=1e-3)
    assert by_raw.tier == by_rules.tier == "critical"


def test_the_table_shows_consumption_remaining_burn_rates_and_tier(proms: Proms) -> None:
    result = run_check(proms.rules.url, "--service", "warn")
    assert result.exit_code == 1
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert lines["service"] == "warn (namespace production)"
    assert lines["consumed"] == "60.0%"
    assert lines["remaining"] == "40.0%"
    assert "5m 0.60" in result.stdout and "1h 0.60" in result.stdout
    assert lines["tier"] == "WARNING (>= 50%), exit 1"
    assert "slo:error_budget_consumed:ratio" in lines["source"]


def test_service_and_namespace_default_to_service_name_and_namespace(proms: Proms) -> None:
    result = run_check(proms.rules.url, "--json")
    assert (as_json(result)["service"], as_json(result)["namespace"]) == ("calm", "production")
    assert result.exit_code == 0


def test_prometheus_down_exits_4_and_says_so() -> None:
    result = run_check(f"http://127.0.0.1:{free_port()}", "--service", "warn")
    assert result.exit_code == 4
    assert "Prometheus unreachable" in result.stderr
    assert "cannot reach Prometheus" in result.stderr


def test_prometheus_down_in_json_names_the_cause() -> None:
    result = run_check(f"http://127.0.0.1:{free_port()}", "--json")
    report = as_json(result)
    assert result.exit_code == 4
    assert (report["cause"], report["tier"], report["exit_code"]) == (
        "prometheus_unreachable",
        "unknown",
        4,
    )


def test_a_service_prometheus_has_never_seen_exits_4_with_no_data(proms: Proms) -> None:
    result = run_check(proms.rules.url, "--service", "ghost")
    assert result.exit_code == 4
    assert "no data" in result.stderr
    assert "no http_requests_total series for service=ghost" in result.stderr


def test_a_namespace_without_the_service_is_no_data_not_healthy(proms: Proms) -> None:
    result = run_check(proms.rules.url, "--service", "emer", "--namespace", "staging", "--json")
    assert result.exit_code == 4
    assert as_json(result)["cause"] == "no_data"


def test_a_service_without_traffic_is_no_data(proms: Proms) -> None:
    result = run_check(proms.raw.url, "--service", "idle", "--json")
    assert result.exit_code == 4
    report = as_json(result)
    assert report["cause"] == "no_data"
    assert "did not increase over 30d" in report["error"]


def test_forcing_the_rules_where_they_are_not_loaded_is_no_data(proms: Proms) -> None:
    result = run_check(proms.raw.url, "--service", "warn", "--source", "rules")
    assert result.exit_code == 4
    assert "no slo:error_budget_consumed:ratio series" in result.stderr


def test_label_values_are_quoted_so_odd_service_names_are_no_data_not_errors(
    proms: Proms,
) -> None:
    result = run_check(proms.rules.url, "--service", 'we"ird\\', "--json")
    assert result.exit_code == 4
    assert as_json(result)["cause"] == "no_data"


def test_a_bad_setting_is_could_not_evaluate() -> None:
    result = CliRunner().invoke(check, [], env={"ERROR_BUDGET": "2"}, catch_exceptions=False)
    assert result.exit_code == 4
    assert "ERROR_BUDGET" in result.stderr


@pytest.mark.parametrize(
    ("consumed", "tier", "code"),
    [
        (0.0, "healthy", 0),
        (0.4999, "healthy", 0),
        (0.5, "warning", 1),
        (0.7999, "warning", 1),
        (0.8, "critical", 2),
        (0.9499, "critical", 2),
        (0.95, "emergency", 3),
        (12.0, "emergency", 3),
    ],
)
def test_tiers_follow_consumption_alone(consumed: float, tier: str, code: int) -> None:
    assert tier_of(consumed) == (tier, code)
    report = BudgetReport("s", "n", "raw_promql", consumed, {"5m": 1000.0})
    assert (report.tier, report.exit_code) == (tier, code)


def test_the_rules_used_are_the_shipped_ones() -> None:
    assert {p.name for p in SHIPPED_RULES} >= {"slo-input.yml", "slo-budget.yml"}
    assert all(isinstance(p, Path) and p.exists() for p in SHIPPED_RULES)


# -- the documented post-deploy watch loop, as CI runs it ---------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "ci-integration.md"
WATCH_MARKER = "<!-- tests/test_check.py runs this block"


def watch_loop() -> str:
    """The shell block of docs/ci-integration.md that follows the marker comment."""
    text = DOCS.read_text(encoding="utf-8")
    after = text[text.index(WATCH_MARKER) :]
    block = after.split("```sh\n", 1)[1].split("\n```", 1)[0]
    assert "--service checkout" in block
    return block


def run_watch(
    tmp_path: Path, prometheus_url: str, service: str, minutes: int
) -> subprocess.CompletedProcess[str]:
    """The documented loop under `bash -eo pipefail`, as GitHub Actions runs a step."""
    script = tmp_path / "watch.sh"
    script.write_text(watch_loop().replace("--service checkout", f"--service {service}"))
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PROMETHEUS_URL": prometheus_url,
        "ERROR_BUDGET": str(ERROR_BUDGET),
        "SLO_WINDOW": "30d",
        "NAMESPACE": "production",
        "WATCH_MINUTES": str(minutes),
        "WATCH_INTERVAL_SECONDS": "0",
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_the_documented_watch_loop_is_clean_shell() -> None:
    result = subprocess.run(
        ["shellcheck", "--shell=bash", "-"],
        input=watch_loop(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("service", ["calm", "warn"])
def test_the_watch_loop_under_bash_e_keeps_watching_healthy_and_warning_services(
    proms: Proms, tmp_path: Path, service: str
) -> None:
    result = run_watch(tmp_path, proms.rules.url, service, minutes=2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(f"service    {service}") == 2
    assert result.stdout.strip().endswith("error budget held for the watch period")


@pytest.mark.parametrize(("service", "code"), [("crit", 2), ("emer", 3)])
def test_the_watch_loop_under_bash_e_fails_the_job_through_its_own_handling_when_burning(
    proms: Proms, tmp_path: Path, service: str, code: int
) -> None:
    result = run_watch(tmp_path, proms.rules.url, service, minutes=3)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.strip().endswith(f"error budget burning after the deploy (exit {code})")
    assert result.stdout.count(f"service    {service}") == 1


def test_the_watch_loop_under_bash_e_retries_exit_4_and_fails_when_it_never_evaluated(
    tmp_path: Path,
) -> None:
    result = run_watch(tmp_path, f"http://127.0.0.1:{free_port()}", "calm", minutes=2)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == [
        "could not evaluate the error budget (exit 4); trying again",
        "could not evaluate the error budget (exit 4); trying again",
        "never evaluated the error budget: Prometheus unreachable or no data",
    ]
    assert result.stderr.count("Prometheus unreachable") == 2
