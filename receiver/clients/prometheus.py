"""A small Prometheus HTTP API client: instant queries and the alerts API."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import requests


class PrometheusUnavailable(Exception):
    """Prometheus could not be asked, or answered with an error; the text says which."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class PrometheusClient:
    """Instant queries against PROMETHEUS_URL (GET /api/v1/query, /api/v1/alerts)."""

    def __init__(
        self, base_url: str, timeout: float = 5.0, session: requests.Session | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            response = self.session.get(
                f"{self.base_url}{path}", params=params, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise PrometheusUnavailable(
                f"cannot reach Prometheus at {self.base_url}: {exc.__class__.__name__}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusUnavailable(
                f"Prometheus answered {response.status_code} without JSON"
            ) from None
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusUnavailable(
                f"Prometheus answered {response.status_code}: {body.get('error', 'error')}"
            )
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Run an instant query (at `at`, default now); a vector's samples (NaN, Inf dropped)."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self._get("/api/v1/query", params)
        if data.get("resultType") == "scalar":
            value = float(data["result"][1])
            return [] if not math.isfinite(value) else [Sample({}, value)]
        samples = []
        for item in data.get("result", []):
            value = float(item["value"][1])
            if math.isfinite(value):
                samples.append(Sample(dict(item.get("metric", {})), value))
        return samples

    def samples_between(
        self, selector: str, after: float, until: float
    ) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
        """Each series' raw (timestamp, value) samples in (after, until], NaN and Inf dropped."""
        seconds = int(until - after)
        if seconds < 1:
            return {}
        data = self._get(
            "/api/v1/query", {"query": f"{selector}[{seconds}s]", "time": f"{until:.3f}"}
        )
        found: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for item in data.get("result", []) if data.get("resultType") == "matrix" else []:
            points = [(float(t), float(v)) for t, v in item.get("values", [])]
            finite = [(t, v) for t, v in points if math.isfinite(v)]
            if finite:
                found[tuple(sorted(dict(item.get("metric", {})).items()))] = finite
        return found

    def query_value(self, expr: str, at: float | None = None) -> float | None:
        """The first sample's value of an instant query (at `at`, default now), or None."""
        samples = self.query(expr, at)
        return samples[0].value if samples else None

    def alerts(self) -> list[dict[str, Any]]:
        """Prometheus's active alerts (GET /api/v1/alerts): labels, state, activeAt, value."""
        data = self._get("/api/v1/alerts")
        return list(data.get("alerts", []))

    def config_yaml(self) -> str:
        """The running configuration as YAML (GET /api/v1/status/config)."""
        return str(self._get("/api/v1/status/config").get("yaml") or "")

    def ready(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/-/ready", timeout=self.timeout).ok
        except requests.RequestException:
            return False
