"""The stabilisation check: did errors fall in the traffic served after the rollback went live?

Only traffic served after validation counts (CONTRACT "Actions"): the receiver reads the input
layer's short-window series `slo:sli_error:ratio_rate1m`, taking only samples evaluated at least
its window plus a clock slack after validation, so no sample still holds the breach. When that
series has no such sample (rules not loaded), it asks the raw 5xx ratio of `http_requests_total`
with `increase()` over the seconds since validation. The newest ratio below the threshold means
the rollback worked; ratios that stay above it until the window ends mean `not_effective`; no
answer, no sample or no traffic means not verified (None), never "errors fell".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from receiver.act.polling import Pacing
from receiver.clients.prometheus import PrometheusClient, PrometheusUnavailable

log = logging.getLogger("receiver.validate")

POLL_SECONDS = 5.0
SHORT_SERIES = "slo:sli_error:ratio_rate1m"
SHORT_WINDOW_SECONDS = 60.0  # the range of SHORT_SERIES (rate over 1m)
CLOCK_SLACK_SECONDS = 5.0  # clock skew between the receiver, Prometheus and the app


def _label(value: str) -> str:
    """A PromQL string literal for a label value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _selector(service: str, namespace: str) -> str:
    return f"service={_label(service)},namespace={_label(namespace)}"


def short_series_selector(service: str, namespace: str) -> str:
    """The input layer's short-window error-ratio series of one service."""
    return f"{SHORT_SERIES}{{{_selector(service, namespace)}}}"


def raw_ratio_since(service: str, namespace: str, seconds: int) -> str:
    """The raw 5xx ratio of the last `seconds` (no sample when there was no traffic)."""
    selector = _selector(service, namespace)
    return (
        f'sum(increase(http_requests_total{{{selector},code=~"5.."}}[{seconds}s]))'
        f" / (sum(increase(http_requests_total{{{selector}}}[{seconds}s])) > 0)"
    )


def ratio_after(
    prometheus: PrometheusClient, service: str, namespace: str, validated_at: float, now: float
) -> float | None:
    """The newest error ratio of traffic served after `validated_at` (wall time), or None."""
    start = validated_at + SHORT_WINDOW_SECONDS + CLOCK_SLACK_SECONDS
    if now <= start:
        return None
    series = prometheus.samples_between(short_series_selector(service, namespace), start, now)
    if series:
        return max(points[-1][1] for points in series.values())
    seconds = int(now - validated_at - CLOCK_SLACK_SECONDS)
    return prometheus.query_value(raw_ratio_since(service, namespace, seconds), at=now)


def errors_fell(
    prometheus: PrometheusClient,
    service: str,
    namespace: str,
    threshold: float,
    window_seconds: float,
    pacing: Pacing | None = None,
    wall: Callable[[], float] = time.time,
) -> bool | None:
    """True when errors after validation (now) fell below `threshold` within the window.

    False when every post-validation ratio stayed at or above it; None when not verified:
    Prometheus could not be asked, or had no post-validation sample (no data, no traffic).
    """
    pacing = pacing or Pacing(POLL_SECONDS)
    validated_at, started = wall(), pacing.clock()
    deadline = pacing.deadline(window_seconds)
    first_look = started + SHORT_WINDOW_SECONDS + CLOCK_SLACK_SECONDS + 1.0
    seen: float | None = None
    while True:
        if pacing.clock() >= first_look:
            now = validated_at + (pacing.clock() - started)
            try:
                value = ratio_after(prometheus, service, namespace, validated_at, now)
            except PrometheusUnavailable as exc:
                log.warning("stabilisation not verified: %s", exc, extra={"service": service})
                return None
            if value is not None:
                seen = value
                if value < threshold:
                    return True
        if deadline.passed():
            break
        early = first_look - pacing.clock()
        deadline.wait(early if early > 0 else None)
    if seen is None:
        log.warning(
            "stabilisation not verified: no error-ratio sample after validation",
            extra={"service": service},
        )
        return None
    log.warning(
        "errors did not fall after the rollback",
        extra={"service": service, "error_ratio": seen, "threshold": threshold},
    )
    return False
