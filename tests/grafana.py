"""The Grafana dashboard of deploy/grafana, read as Grafana would: panels, queries, metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "rollback-receiver.json"
# What Grafana substitutes before it sends a query (the test's stand-ins for a 6h view).
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$namespace": ".*",
    "$service": ".*",
}
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]


def substitute(expr: str, **values: str) -> str:
    """The query as Grafana sends it, with the dashboard's variables replaced."""
    for name, default in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, values.get(name.lstrip("$"), default))
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names a query selects (every selector in the dashboard has braces)."""
    return set(_SELECTOR.findall(expr))
