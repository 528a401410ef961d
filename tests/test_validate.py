"""The stabilisation check: only traffic served after validation decides whether errors fell."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask, Response, request

from receiver.act.polling import Pacing
from receiver.act.validate import (
    CLOCK_SLACK_SECONDS,
    SHORT_WINDOW_SECONDS,
    errors_fell,
    raw_ratio_since,
    short_series_selector,
)
from receiver.clients.prometheus import PrometheusClient
from tests.fake_time import FakeClock
from tests.fakes import ServerThread
from tests.procs import SHIPPED_RULES, Prometheus
from tests.prom import Exporter

WALL_START = 1_800_000_000.0
FIRST_LOOK = SHORT_WINDOW_SECONDS + CLOCK_SLACK_SECONDS


@dataclass
class Sample:
    at: float  # seconds after validation (wall)
    value: float


@dataclass
class FakePrometheus:
    """Answers /api/v1/query: the short series' samples as a matrix, the raw ratio as a vector."""

    short: list[Sample] = field(default_factory=list)
    raw: float | None = None
    status: int = 200
    asked: list[tuple[str, float]] = field(default_factory=list)

    def app(self) -> Flask:
        app = Flask(__name__)

        @app.get("/api/v1/query")
        def query() -> Response:
            expr, at = request.args["query"], float(request.args["time"])
            self.asked.append((expr, at))
            if self.status != 200:
                body = {"status": "error", "errorType": "internal", "error": "boom"}
                return Response(json.dumps(body), status=self.status, mimetype="application/json")
            if expr.startswith("slo:sli_error:ratio_rate1m"):
                seconds = float(expr.rsplit("[", 1)[1].rstrip("s]"))
                values = [
                    [WALL_START + s.at, str(s.value)]
                    for s in self.short
                    if at - seconds < WALL_START + s.at <= at
                ]
                result = [{"metric": {"service": "checkout"}, "values": values}] if values else []
                data = {"resultType": "matrix", "result": result}
            else:
                vector = [] if self.raw is None else [{"metric": {}, "value": [at, str(self.raw)]}]
                data = {"resultType": "vector", "result": vector}
            return Response(
                json.dumps({"status": "success", "data": data}), mimetype="application/json"
            )

        return app


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    prometheus = FakePrometheus()
    server = ServerThread(prometheus.app())
    server.start()
    prometheus.url = server.url  # type: ignore[attr-defined]
    yield prometheus
    server.stop()


@contextmanager
def client_of(url: str) -> Iterator[PrometheusClient]:
    client = PrometheusClient(url, timeout=2.0)
    try:
        yield client
    finally:
        client.session.close()


def check(prometheus: FakePrometheus, window: float = 300.0) -> tuple[bool | None, FakeClock]:
    clock = FakeClock(0.0)
    with client_of(prometheus.url) as client:  # type: ignore[attr-defined]
        fell = errors_fell(
            client,
            "checkout",
            "production",
            0.01,
            window,
            Pacing(5.0, clock, clock.sleep),
            wall=lambda: WALL_START,
        )
    return fell, clock


def test_no_query_is_made_before_the_short_window_lies_wholly_after_validation(
    fake: FakePrometheus,
) -> None:
    fake.short = [Sample(FIRST_LOOK + 2, 0.0)]
    fell, clock = check(fake)
    assert fell is True
    assert clock.sleeps[0] >= FIRST_LOOK
    expr, at = fake.asked[0]
    seconds = float(expr.rsplit("[", 1)[1].rstrip("s]"))
    assert at - seconds >= WALL_START + FIRST_LOOK  # the range starts after validation + 1m


def test_samples_still_holding_the_breach_are_never_read(fake: FakePrometheus) -> None:
    """A clean sample from before validation + 1m must not count as "errors fell"."""
    fake.short = [Sample(30.0, 0.0), Sample(FIRST_LOOK + 1, 0.4), Sample(FIRST_LOOK + 20, 0.003)]
    fell, clock = check(fake)
    assert fell is True
    assert clock.now >= FIRST_LOOK + 20  # decided on the later, clean sample


def test_errors_that_stay_high_after_validation_are_not_effective(fake: FakePrometheus) -> None:
    fake.short = [Sample(FIRST_LOOK + t, 0.3) for t in range(1, 200, 5)]
    fell, clock = check(fake, window=120.0)
    assert fell is False
    assert clock.now == pytest.approx(120.0)


def test_no_sample_after_validation_is_not_verified(fake: FakePrometheus) -> None:
    fake.short = [Sample(10.0, 0.0)]  # only a sample that still holds the breach
    fell, _ = check(fake, window=120.0)
    assert fell is None


def test_the_raw_ratio_since_validation_is_asked_when_the_series_has_no_sample(
    fake: FakePrometheus,
) -> None:
    fake.raw = 0.001
    fell, _ = check(fake)
    assert fell is True
    raw = [(expr, at) for expr, at in fake.asked if "increase(http_requests_total" in expr]
    assert raw, fake.asked
    expr, at = raw[0]
    seconds = int(expr.split("[", 1)[1].split("s]", 1)[0])
    assert at - seconds >= WALL_START + CLOCK_SLACK_SECONDS  # starts after validation
    assert "> 0" in expr  # no traffic is no sample, never a 0 ratio


def test_a_window_shorter_than_the_short_series_is_not_verified(fake: FakePrometheus) -> None:
    fake.short = [Sample(FIRST_LOOK + 1, 0.0)]
    fell, _ = check(fake, window=30.0)
    assert fell is None
    assert fake.asked == []


def test_a_prometheus_error_means_not_verified(fake: FakePrometheus) -> None:
    fake.status = 500
    fell, clock = check(fake)
    assert fell is None
    assert clock.now < FIRST_LOOK + 5


def test_an_unreachable_prometheus_means_not_verified() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = FakeClock(0.0)
    with client_of(f"http://127.0.0.1:{port}") as client:
        fell = errors_fell(
            client, "checkout", "production", 0.01, 300.0, Pacing(5.0, clock, clock.sleep)
        )
    assert fell is None


def test_label_values_are_quoted_safely() -> None:
    selector = short_series_selector('we"ird\\svc', "prod")
    raw = raw_ratio_since('we"ird\\svc', "prod", 90)
    assert 'service="we\\"ird\\\\svc"' in selector and 'service="we\\"ird\\\\svc"' in raw


# -- against the real Prometheus and the shipped rules ---------------------------------------


# The stabilisation window of the real-Prometheus runs: past the first look (the 1m series'
# range plus the clock slack, 66 s), short enough to keep the module near a minute and a half.
REAL_WINDOW = 75.0


@dataclass
class RealOutcomes:
    fell: dict[str, bool | None]
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def real_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOutcomes]:
    """Three services broken for a while, then at validation: healed, still broken, idle."""
    tmp: Path = tmp_path_factory.mktemp("stabilise")
    with Exporter() as exporter:
        for service in ("healed", "broken", "idle"):
            exporter.traffic.set(service, rps=50, error_ratio=0.5)
        prom = Prometheus(tmp, targets=[exporter.address], rule_files=SHIPPED_RULES).start()
        try:
            # 20 evaluations of the breach: the 5m window still holds it after the heal.
            prom.wait_for(
                'count_over_time(slo:sli_error:ratio_rate5m{service="healed"}[5m]) >= 20'
                ' and slo:sli_error:ratio_rate5m{service="healed"} > 0.4',
                timeout=90,
            )
            exporter.traffic.set("healed", rps=50, error_ratio=0.0)  # the rollback went live
            exporter.traffic.set("idle", rps=0.0, error_ratio=0.0)
            outcomes = RealOutcomes({}, {})

            def judge(service: str) -> None:
                started = time.monotonic()
                with client_of(prom.url) as client:
                    outcomes.fell[service] = errors_fell(
                        client, service, "production", 0.01, REAL_WINDOW, Pacing(1.0)
                    )
                outcomes.seconds[service] = time.monotonic() - started

            threads = [
                threading.Thread(target=judge, args=(s,)) for s in ("healed", "broken", "idle")
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            # The breach is still in the 5m window the old check read: it would not have healed.
            assert prom.query('slo:sli_error:ratio_rate5m{service="healed"} > 0.01')
            yield outcomes
        finally:
            prom.stop()


def test_a_heal_at_validation_counts_as_errors_fell_about_a_minute_later(
    real_outcomes: RealOutcomes,
) -> None:
    assert real_outcomes.fell["healed"] is True
    assert FIRST_LOOK <= real_outcomes.seconds["healed"] < REAL_WINDOW


def test_a_service_that_stays_broken_is_not_effective_at_the_window(
    real_outcomes: RealOutcomes,
) -> None:
    assert real_outcomes.fell["broken"] is False
    assert real_outcomes.seconds["broken"] >= REAL_WINDOW


def test_no_traffic_after_validation_is_not_verified(real_outcomes: RealOutcomes) -> None:
    assert real_outcomes.fell["idle"] is None
