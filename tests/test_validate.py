"""The stabilisation check against a small fake of Prometheus's instant-query API."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask, Response, request

from receiver.act.polling import Pacing
from receiver.act.validate import error_ratio_queries, errors_fell
from receiver.clients.prometheus import PrometheusClient
from tests.fake_time import FakeClock as Clock
from tests.fakes import ServerThread


class FakePrometheus:
    """Answers /api/v1/query from scripted sequences: the rule's and the raw query's values."""

    def __init__(self) -> None:
        self.rule: list[float | None] = []
        self.raw: list[float | None] = []
        self.queries: list[str] = []
        self.status = 200
        app = Flask(__name__)

        @app.get("/api/v1/query")
        def query() -> Response:
            expr = request.args["query"]
            self.queries.append(expr)
            if self.status != 200:
                body = {"status": "error", "errorType": "internal", "error": "boom"}
                return Response(json.dumps(body), status=self.status, mimetype="application/json")
            series = self.rule if "slo:sli_error:ratio_rate5m" in expr else self.raw
            value = series.pop(0) if len(series) > 1 else (series[0] if series else None)
            result = [] if value is None else [{"metric": {}, "value": [1.0, str(value)]}]
            body = {"status": "success", "data": {"resultType": "vector", "result": result}}
            return Response(json.dumps(body), mimetype="application/json")

        self.server = ServerThread(app)


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    fake.server.start()
    yield fake
    fake.server.stop()


@contextmanager
def prometheus_client(url: str) -> Iterator[PrometheusClient]:
    client = PrometheusClient(url, timeout=2.0)
    try:
        yield client
    finally:
        client.session.close()


def check(fake: FakePrometheus, clock: Clock, window: float = 60.0) -> bool | None:
    with prometheus_client(fake.server.url) as client:
        return errors_fell(
            client,
            "checkout",
            "production",
            0.01,
            window,
            Pacing(10.0, clock, clock.sleep),
        )


def test_errors_that_fall_below_the_threshold_count_as_effective(
    prometheus: FakePrometheus,
) -> None:
    prometheus.rule = [0.2, 0.05, 0.004]
    clock = Clock()
    assert check(prometheus, clock) is True
    assert clock.sleeps == [10.0, 10.0]
    assert 'service="checkout"' in prometheus.queries[0]
    assert 'namespace="production"' in prometheus.queries[0]


def test_errors_that_stay_high_for_the_window_are_not_effective(
    prometheus: FakePrometheus,
) -> None:
    prometheus.rule = [0.3]
    clock = Clock()
    assert check(prometheus, clock, window=30.0) is False
    assert sum(clock.sleeps) == pytest.approx(30.0)


def test_raw_promql_is_used_when_the_recording_rule_has_no_data(
    prometheus: FakePrometheus,
) -> None:
    prometheus.rule = [None]
    prometheus.raw = [0.001]
    assert check(prometheus, Clock()) is True
    assert "http_requests_total" in prometheus.queries[1]
    assert 'code=~"5.."' in prometheus.queries[1]


def test_no_data_at_all_means_not_checked(prometheus: FakePrometheus) -> None:
    prometheus.rule, prometheus.raw = [None], [None]
    assert check(prometheus, Clock(), window=20.0) is None


def test_a_prometheus_error_means_not_checked(prometheus: FakePrometheus) -> None:
    prometheus.status = 500
    clock = Clock()
    assert check(prometheus, clock) is None
    assert clock.sleeps == []


def test_an_unreachable_prometheus_means_not_checked() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with prometheus_client(f"http://127.0.0.1:{port}") as client:
        assert (
            errors_fell(
                client, "checkout", "production", 0.01, 60.0, Pacing(15.0, Clock(), lambda s: None)
            )
            is None
        )


def test_label_values_are_quoted_safely() -> None:
    rule, raw = error_ratio_queries('we"ird\\svc', "prod")
    assert 'service="we\\"ird\\\\svc"' in rule and 'service="we\\"ird\\\\svc"' in raw
