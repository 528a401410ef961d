"""deploy/grafana: the dashboard's schema, its queries against a real Prometheus, its ConfigMap."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.grafana import DASHBOARD, load, metric_names, substitute, targets
from tests.procs import SHIPPED_RULES, Prometheus
from tests.tools import run, tool

CONTRACT_METRICS = {
    "rollback_in_progress",
    "rollback_last_transition_timestamp_seconds",
    "rollback_started_total",
    "rollback_completed_total",
    "rollback_failed_total",
    "rollback_skipped_total",
    "rollback_decisions_total",
    "rollback_not_effective_total",
    "rollback_notification_failures_total",
    "rollback_duration_seconds_bucket",
    "rollback_webhook_requests_total",
    "rollback_webhook_duration_seconds_bucket",
    "ALERTS",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def recorded_names() -> set[str]:
    names = set()
    for path in SHIPPED_RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load()


def test_the_dashboard_has_the_fields_grafana_requires(dashboard: dict[str, Any]) -> None:
    """Title, uid, schemaVersion, and per panel id, type, title, gridPos, datasource, targets."""
    assert dashboard["uid"] == "rollback-receiver"
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["type"] in {"timeseries", "stat", "table"}, panel["title"]
        assert panel["title"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert all(isinstance(v, int) and v >= 0 for v in grid.values())
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == DATASOURCE


def test_no_two_panels_overlap(dashboard: dict[str, Any]) -> None:
    """Grid cells are covered by one panel at most."""
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_service_namespace_and_the_prometheus_datasource_are_variables(
    dashboard: dict[str, Any],
) -> None:
    """Template variables `service`, `namespace` and the datasource; the panels use them."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("service", "namespace"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["query"]["query"].startswith("label_values(")
    exprs = " ".join(expr for _, expr in targets(dashboard))
    assert 'service=~"$service"' in exprs and 'namespace=~"$namespace"' in exprs


def test_the_panels_cover_what_the_issue_lists(dashboard: dict[str, Any]) -> None:
    """Budget, burn rates, triggers, rollbacks by stage, in progress, decisions, webhook, notify."""
    named = set().union(*(metric_names(expr) for _, expr in targets(dashboard)))
    assert {
        "slo:error_budget_consumed:ratio",
        "slo:burn_rate:ratio_rate5m",
        "slo:burn_rate:ratio_rate1h",
    } <= named
    assert CONTRACT_METRICS <= named


def test_every_query_names_only_shipped_series(dashboard: dict[str, Any]) -> None:
    """Each metric is a contract metric, ALERTS or a series the shipped rules record."""
    known = CONTRACT_METRICS | recorded_names()
    for title, expr in targets(dashboard):
        names = metric_names(expr)
        assert names, f"{title}: no selector with braces in {expr!r}"
        assert names <= known, f"{title}: unknown {names - known}"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus with the shipped rules."""
    prom = Prometheus(tmp_path_factory.mktemp("grafana"), rule_files=SHIPPED_RULES).start()
    try:
        yield prom
    finally:
        prom.stop()


def promql_error(prom: Prometheus, expr: str) -> str | None:
    """The error Prometheus gives for a query, or None when it is valid."""
    with requests.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=5) as answer:
        body = answer.json()
    return None if body["status"] == "success" else str(body.get("error"))


def test_every_panel_query_is_valid_promql(
    dashboard: dict[str, Any], prometheus: Prometheus
) -> None:
    """Prometheus parses and runs every query once Grafana's variables are substituted."""
    errors = {
        (title, expr): promql_error(prometheus, substitute(expr))
        for title, expr in targets(dashboard)
    }
    assert {k: v for k, v in errors.items() if v} == {}


def test_the_variable_queries_select_valid_series(
    dashboard: dict[str, Any], prometheus: Prometheus
) -> None:
    """The selector inside each label_values(...) is valid PromQL."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["name"]
        assert promql_error(prometheus, substitute(match.group(1))) is None


def test_the_validity_check_is_not_vacuous(prometheus: Prometheus) -> None:
    """A broken query is reported, so the checks above can fail."""
    assert promql_error(prometheus, "sum by (service (rollback_started_total{})") is not None


def test_the_configmap_carries_the_dashboard_for_the_grafana_sidecar() -> None:
    """`kubectl kustomize deploy/grafana` renders one ConfigMap labelled grafana_dashboard=1."""
    result = run(tool("kubectl"), "kustomize", str(DASHBOARD.parent))
    assert result.returncode == 0, result.stderr
    [config_map] = list(yaml.safe_load_all(result.stdout))
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"][DASHBOARD.name]) == load()


def test_the_dashboard_json_is_formatted_as_committed() -> None:
    """The file is plain JSON with two-space indent (diffs stay readable)."""
    text = Path(DASHBOARD).read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
