"""`check`: a service's error-budget consumption and burn rates, read from Prometheus.

The shipped recording rules (alerts/slo-*.yml) are used when they have a
series for the service; otherwise the same figures are computed with raw
PromQL from `http_requests_total{service,namespace,code}` (5xx = error),
ERROR_BUDGET and SLO_WINDOW. With `source="sloth"` the figures come from a
Sloth-generated SLO's recording rules instead (series labelled sloth_service
and sloth_slo). The tier depends on consumption alone; burn rates are shown
beside it. Nothing here acts on anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from receiver.clients.prometheus import PrometheusClient, PrometheusUnavailable

# Consumption thresholds, highest first: (tier, share of the budget, exit code).
THRESHOLDS = (("emergency", 0.95, 3), ("critical", 0.8, 2), ("warning", 0.5, 1))
HEALTHY, EXIT_HEALTHY = "healthy", 0
EXIT_CANNOT_EVALUATE = 4

CONSUMED_RECORD = "slo:error_budget_consumed:ratio"
BURN_RATE_PREFIX = "slo:burn_rate:ratio_rate"
RAW_BURN_WINDOWS = ("5m", "30m", "1h", "6h", "1d")
SOURCES = ("auto", "rules", "raw", "sloth")

# Sloth's recording rules (slok/sloth examples/_gen/getting-started.yml): per-window error
# ratios slo:sli_error:ratio_rate<window>, the SLO period's ratio under the period's own name
# (ratio_rate30d by default), slo:error_budget:ratio, slo:time_period:days, and
# slo:period_error_budget_remaining:ratio = 1 - ratio over the period / budget.
SLOTH_REMAINING_RECORD = "slo:period_error_budget_remaining:ratio"
SLOTH_BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class CannotEvaluate(Exception):
    """The budget could not be read; `cause` is prometheus_unreachable or no_data."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message


@dataclass(frozen=True)
class BudgetReport:
    """One service's budget as `check` prints it."""

    service: str
    namespace: str
    source: str  # recording_rules | raw_promql | sloth
    consumed: float  # share of the window's budget spent: 1.0 = all of it
    burn_rates: dict[str, float] = field(default_factory=dict)  # window -> burn rate
    error_budget: float | None = None
    slo_window: str | None = None
    slo: str | None = None  # the Sloth SLO name (sloth_slo), for source "sloth"

    @property
    def remaining(self) -> float:
        return max(0.0, 1.0 - self.consumed)

    @property
    def tier(self) -> str:
        return tier_of(self.consumed)[0]

    @property
    def exit_code(self) -> int:
        return tier_of(self.consumed)[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "namespace": self.namespace,
            "source": self.source,
            "consumed": self.consumed,
            "remaining": self.remaining,
            "burn_rates": dict(self.burn_rates),
            "error_budget": self.error_budget,
            "slo_window": self.slo_window,
            "tier": self.tier,
            "exit_code": self.exit_code,
            **({"slo": self.slo} if self.slo is not None else {}),
        }


def tier_of(consumed: float) -> tuple[str, int]:
    """The tier and exit code of a consumption (>=0.5 warning, >=0.8 critical, >=0.95 emergency)."""
    for tier, threshold, code in THRESHOLDS:
        if consumed >= threshold:
            return tier, code
    return HEALTHY, EXIT_HEALTHY


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _selector(service: str, namespace: str, extra: str = "") -> str:
    return f"service={_quote(service)},namespace={_quote(namespace)}{extra}"


def _window_seconds(window: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", window)
    return int(match.group(1)) * _UNIT[match.group(2)] if match else float("inf")


def read_budget(
    client: PrometheusClient,
    service: str,
    namespace: str,
    *,
    error_budget: float,
    slo_window: str,
    source: str = "auto",
    slo: str | None = None,
) -> BudgetReport:
    """Budget of one service: recording rules first (unless `source` says), else raw PromQL."""
    try:
        if source == "sloth":
            return read_sloth_budget(client, service, namespace, slo)
        if source in ("auto", "rules"):
            report = _from_rules(client, service, namespace)
            if report is not None:
                return report
            if source == "rules":
                raise CannotEvaluate(
                    "no_data",
                    f"no {CONSUMED_RECORD} series for service={service} namespace={namespace}: "
                    "are the recording rules of alerts/ loaded, and is the service scraped?",
                )
        return _from_raw(client, service, namespace, error_budget, slo_window, source == "auto")
    except PrometheusUnavailable as exc:
        raise CannotEvaluate("prometheus_unreachable", str(exc)) from None


def _from_rules(client: PrometheusClient, service: str, namespace: str) -> BudgetReport | None:
    consumed = client.query_value(f"{CONSUMED_RECORD}{{{_selector(service, namespace)}}}")
    if consumed is None:
        return None
    names = f"{re.escape(BURN_RATE_PREFIX)}.+|slo:error_budget:ratio|slo:time_period:days"
    burn_rates: dict[str, float] = {}
    error_budget = slo_window = None
    for sample in client.query(f'{{__name__=~"{names}",{_selector(service, namespace)}}}'):
        name = sample.labels.get("__name__", "")
        if name.startswith(BURN_RATE_PREFIX):
            burn_rates[name[len(BURN_RATE_PREFIX) :]] = sample.value
        elif name == "slo:error_budget:ratio":
            error_budget = sample.value
        elif name == "slo:time_period:days":
            slo_window = f"{sample.value:g}d"
    ordered = dict(sorted(burn_rates.items(), key=lambda item: _window_seconds(item[0])))
    return BudgetReport(
        service, namespace, "recording_rules", consumed, ordered, error_budget, slo_window
    )


def _sloth_selector(service: str, slo: str) -> str:
    return f"sloth_service={_quote(service)},sloth_slo={_quote(slo)}"


def _sloth_slo_name(client: PrometheusClient, service: str, slo: str | None) -> str:
    """The SLO to read: the one given, else the service's only Sloth SLO."""
    found = client.query(
        f"group by (sloth_slo) (slo:error_budget:ratio{{sloth_service={_quote(service)}}})"
    )
    names = sorted(sample.labels.get("sloth_slo", "") for sample in found)
    if slo is not None:
        if slo in names:
            return slo
        known = ", ".join(names) or "none"
        raise CannotEvaluate(
            "no_data",
            f"no Sloth SLO {slo!r} for sloth_service={service} (its SLOs: {known}): "
            "are Sloth's generated rules loaded in this Prometheus?",
        )
    if len(names) == 1:
        return names[0]
    if not names:
        raise CannotEvaluate(
            "no_data",
            f"no Sloth series slo:error_budget:ratio for sloth_service={service}: "
            "are Sloth's generated rules loaded in this Prometheus?",
        )
    raise CannotEvaluate(
        "no_data",
        f"sloth_service={service} has several SLOs ({', '.join(names)}): pick one with --slo",
    )


def read_sloth_budget(
    client: PrometheusClient, service: str, namespace: str, slo: str | None
) -> BudgetReport:
    """Budget of one Sloth SLO of a service, from Sloth's own recording rules."""
    name = _sloth_slo_name(client, service, slo)
    where = _sloth_selector(service, name)
    budget = client.query_value(f"max(slo:error_budget:ratio{{{where}}})")
    days = client.query_value(f"max(slo:time_period:days{{{where}}})")
    if budget is None or budget <= 0:
        raise CannotEvaluate("no_data", f"no usable slo:error_budget:ratio for {where}")
    period = f"{days:g}d" if days else "30d"
    remaining = client.query_value(f"max({SLOTH_REMAINING_RECORD}{{{where}}})")
    if remaining is not None:
        consumed = 1.0 - remaining
    else:
        ratio = client.query_value(f"max(slo:sli_error:ratio_rate{period}{{{where}}})")
        if ratio is None:
            raise CannotEvaluate(
                "no_data",
                f"neither {SLOTH_REMAINING_RECORD} nor slo:sli_error:ratio_rate{period} "
                f"has a series for {where} (fewer than two samples yet?)",
            )
        consumed = ratio / budget
    burn_rates: dict[str, float] = {}
    for window in SLOTH_BURN_WINDOWS:
        value = client.query_value(f"max(slo:sli_error:ratio_rate{window}{{{where}}})")
        if value is not None:
            burn_rates[window] = value / budget
    return BudgetReport(service, namespace, "sloth", consumed, burn_rates, budget, period, name)


def _error_ratio(service: str, namespace: str, function: str, window: str) -> str:
    five_xx = ',code=~"5.."'
    errors = f"http_requests_total{{{_selector(service, namespace, five_xx)}}}"
    requests = f"http_requests_total{{{_selector(service, namespace)}}}"
    # A service that never answered 5xx has no 5xx series: count it as no errors.
    return (
        f"(sum({function}({errors}[{window}])) or vector(0))"
        f" / sum({function}({requests}[{window}]))"
    )


def _from_raw(
    client: PrometheusClient,
    service: str,
    namespace: str,
    error_budget: float,
    slo_window: str,
    rules_tried: bool,
) -> BudgetReport:
    ratio = client.query_value(_error_ratio(service, namespace, "increase", slo_window))
    if ratio is None:
        series = client.query_value(
            f"count(http_requests_total{{{_selector(service, namespace)}}})"
        )
        tried = f"no {CONSUMED_RECORD} series and " if rules_tried else ""
        if series is None:
            why = (
                f"{tried}no http_requests_total series for service={service} "
                f"namespace={namespace}: is it scraped, with service and namespace labels?"
            )
        else:
            why = (
                f"{tried}http_requests_total for service={service} namespace={namespace} "
                f"did not increase over {slo_window} (no traffic, or fewer than two samples)"
            )
        raise CannotEvaluate("no_data", why)
    burn_rates = {}
    for window in RAW_BURN_WINDOWS:
        value = client.query_value(_error_ratio(service, namespace, "rate", window))
        if value is not None:
            burn_rates[window] = value / error_budget
    return BudgetReport(
        service, namespace, "raw_promql", ratio / error_budget, burn_rates, error_budget, slo_window
    )


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def render_table(report: BudgetReport) -> str:
    """The short human table `check` prints."""
    source = {
        "recording_rules": f"recording rules ({CONSUMED_RECORD})",
        "raw_promql": "raw PromQL on http_requests_total (5xx = error)",
        "sloth": f"Sloth recording rules (sloth_slo {report.slo})",
    }[report.source]
    budget = "-"
    if report.error_budget is not None:
        budget = f"{100 * report.error_budget:g}% of requests may fail"
        if report.slo_window:
            budget += f" over {report.slo_window}"
    burn = "  ".join(f"{w} {v:.2f}" for w, v in report.burn_rates.items()) or "-"
    threshold = next((t for name, t, _ in THRESHOLDS if name == report.tier), None)
    tier = report.tier.upper() + (f" (>= {threshold:.0%})" if threshold else "")
    rows = [
        ("service", f"{report.service} (namespace {report.namespace})"),
        ("source", source),
        ("budget", budget),
        ("consumed", _percent(report.consumed)),
        ("remaining", _percent(report.remaining)),
        ("burn rate", burn),
        ("tier", f"{tier}, exit {report.exit_code}"),
    ]
    return "\n".join(f"{name:<10} {value}" for name, value in rows)
