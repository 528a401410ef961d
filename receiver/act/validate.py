"""The stabilisation check: after a rollback, did the service's short-window error ratio fall?

It asks the shipped recording rule `slo:sli_error:ratio_rate5m` first and, when that has no
data (rules not loaded, other metric names), the raw 5xx ratio of `http_requests_total` over
5 minutes. A ratio below the threshold within the window means the rollback worked; a window
that ends above it means `not_effective`; no answer or no data at all means not checked.
"""

from __future__ import annotations

import logging

from receiver.act.polling import Pacing
from receiver.clients.prometheus import PrometheusClient, PrometheusUnavailable

log = logging.getLogger("receiver.validate")

POLL_SECONDS = 15.0


def _label(value: str) -> str:
    """A PromQL string literal for a label value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def error_ratio_queries(service: str, namespace: str) -> tuple[str, str]:
    """The recording-rule query and its raw PromQL fallback for one service."""
    selector = f"service={_label(service)},namespace={_label(namespace)}"
    rule = f"max(slo:sli_error:ratio_rate5m{{{selector}}})"
    raw = (
        f'sum(rate(http_requests_total{{{selector},code=~"5.."}}[5m]))'
        f" / sum(rate(http_requests_total{{{selector}}}[5m]))"
    )
    return rule, raw


def current_error_ratio(prometheus: PrometheusClient, service: str, namespace: str) -> float | None:
    """The service's 5-minute error ratio now, or None when Prometheus has no data for it."""
    rule, raw = error_ratio_queries(service, namespace)
    value = prometheus.query_value(rule)
    if value is None:
        value = prometheus.query_value(raw)
    return value


def errors_fell(
    prometheus: PrometheusClient,
    service: str,
    namespace: str,
    threshold: float,
    window_seconds: float,
    pacing: Pacing | None = None,
) -> bool | None:
    """True when the error ratio fell below `threshold` within the window, False when it did not.

    None means not checked: Prometheus could not be asked, or never had data for the service.
    """
    deadline = (pacing or Pacing(POLL_SECONDS)).deadline(window_seconds)
    seen: float | None = None
    while True:
        try:
            value = current_error_ratio(prometheus, service, namespace)
        except PrometheusUnavailable as exc:
            log.warning("stabilisation not checked: %s", exc, extra={"service": service})
            return None
        if value is not None:
            seen = value
            if value < threshold:
                return True
        if deadline.passed():
            break
        deadline.wait()
    if seen is None:
        log.warning("stabilisation not checked: no error-ratio data", extra={"service": service})
        return None
    return False
