"""The services page draws the error-budget bar from a real Prometheus with the shipped rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from receiver.app import create_app
from receiver.pipeline import Engine
from tests.console.test_console import page, sign_in
from tests.procs import SHIPPED_RULES, Prometheus
from tests.prom import Exporter


def test_the_budget_bar_shows_what_prometheus_says_was_consumed(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    with Exporter() as exporter:
        exporter.traffic.set("api", rps=1000, error_ratio=0.00085)  # 85% of a 0.1% budget
        prometheus = Prometheus(tmp_path, targets=[exporter.address], rule_files=SHIPPED_RULES)
        prometheus.start()
        try:
            prometheus.wait_for('slo:error_budget_consumed:ratio{service="api"}', lambda r: len(r))
            engine = make_engine(PROMETHEUS_URL=prometheus.url, ERROR_BUDGET="0.001")
            client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
            sign_in(client)
            body = page(client, "/ui/services")
        finally:
            prometheus.stop()
    row = re.search(r'<tr data-service="api">(.*?)</tr>', body, re.S)
    assert row, body
    assert 'class="used critical"' in row.group(1)
    shown = re.search(r"(\d+)% of the error budget consumed", row.group(1))
    assert shown and 80 <= int(shown.group(1)) <= 90, row.group(1)
