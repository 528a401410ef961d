"""End to end: every Grafana dashboard query runs on the real Prometheus after a rollback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Chain, ChainFactory
from tests.e2e.stack import wait_until
from tests.grafana import load, metric_names, substitute, targets


@pytest.fixture(scope="module")
def after_rollback(module_chains: ChainFactory) -> Iterator[Chain]:
    """An error burst followed to its completed rollback, with the receiver scraped since."""
    chain = module_chains.make("grafana")
    chain.route(chain.serve())
    chain.breach()
    answer = chain.first_answer()
    assert answer["decision"] == "rollback", answer
    record = chain.wait_state(answer["rollback_id"], ("completed", "failed", "interrupted"))
    assert record["state"] == "completed", record
    wait_until(
        "Prometheus has scraped the completed rollback",
        lambda: query(chain, f'rollback_completed_total{{service="{chain.service}"}} > 0'),
        30,
    )
    # Range panels (increase, rate) need two samples of a series inside their window: wait
    # for a second scrape after the rollback rather than racing the scrape interval.
    wait_until(
        "Prometheus has two samples of the rollback counters",
        lambda: query(
            chain,
            f'count_over_time(rollback_completed_total{{service="{chain.service}"}}[5m]) >= 2',
        ),
        60,
    )
    yield chain


def query(chain: Chain, expr: str) -> list[dict[str, Any]]:
    url = f"{chain.stack.prometheus.url}/api/v1/query"
    with requests.get(url, params={"query": expr}, timeout=10) as answer:
        body = answer.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return list(body["data"]["result"])


def test_every_metric_the_dashboard_names_exists_after_a_rollback(after_rollback: Chain) -> None:
    """Each metric a panel selects has at least one series in the chain's Prometheus."""
    names = set().union(*(metric_names(expr) for _, expr in targets(load())))
    missing = sorted(n for n in names if not query(after_rollback, f'count({{__name__="{n}"}})'))
    assert missing == []


def test_every_query_is_valid_and_most_return_data_for_the_rolled_back_service(
    after_rollback: Chain,
) -> None:
    """Every panel query runs (service = the chain's); at least three in four return series."""
    empty = []
    all_targets = targets(load())
    for title, expr in all_targets:
        if not query(after_rollback, substitute(expr, service=after_rollback.service)):
            empty.append(title)
    assert len(empty) <= len(all_targets) // 4, f"no data: {empty}"
