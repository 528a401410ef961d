"""The scheduled path: firing trigger alerts from Prometheus, into the same engine as the webhook.

Each firing trigger in Prometheus's alerts API becomes the `Alert` that
Alertmanager would have delivered for it: the alert's labels plus
Prometheus's external labels, Alertmanager's label-set fingerprint, and
`activeAt` as `startsAt` in Alertmanager's format. So the episode key
(fingerprint:startsAt:tier) is the webhook's, and the Redis reservation
dedupes the two paths against each other. For a rule with a `for` delay,
Prometheus sends the firing time as startsAt while the alerts API only shows
`activeAt` (when it went pending): the keys then differ, and the service lock,
cooldown and rate limits are what stop a second rollback.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import yaml

from receiver.clients.prometheus import PrometheusClient, PrometheusUnavailable
from receiver.config import Settings
from receiver.decide.policy import TIERS, TRIGGER_ALERTNAMES, Trigger, classify, trigger_kind
from receiver.decide.vocabulary import Decision
from receiver.errors import ReceiverError
from receiver.intake.payload import ZERO_TIME, Alert
from receiver.pipeline import Engine
from receiver.state.history import State
from receiver.sweeper import sweep_once

log = logging.getLogger("receiver.monitor")

EXIT_OK, EXIT_ROLLBACK_FAILED, EXIT_CANNOT_EVALUATE = 0, 1, 4
FAILED_STATES = (State.FAILED, State.INTERRUPTED)

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert fingerprint: Prometheus model `LabelSet.Fingerprint`, as 16 hex digits.

    FNV-1a 64 over the label names in sorted order, each name and value followed by 0xff.
    """
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for byte in part:
                value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def alertmanager_time(text: str) -> str:
    """An RFC 3339 time as Alertmanager's webhook writes a startsAt it got from Prometheus.

    Prometheus sends times to Alertmanager with millisecond precision (truncated) and the
    webhook marshals them as Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped.
    """
    match = _RFC3339.match(text)
    if not match:
        return text
    seconds, fraction, zone = match.groups()
    moment = datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    millis = ((fraction or "") + "000")[:3].rstrip("0")
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis}Z" if millis else f"{stamp}Z"


def external_labels(client: PrometheusClient) -> dict[str, str]:
    """Prometheus's global external_labels (GET /api/v1/status/config), added to what it sends."""
    try:
        config = yaml.safe_load(client.config_yaml()) or {}
    except yaml.YAMLError:
        raise PrometheusUnavailable(
            "Prometheus answered a configuration that is not YAML"
        ) from None
    labels = (config.get("global") or {}).get("external_labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def is_firing_trigger(raw: Mapping[str, Any], settings: Settings | None = None) -> bool:
    """A firing alert the receiver acts on: a trigger alertname, a tier or a `triggers:` match."""
    labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
    if raw.get("state") != "firing":
        return False
    if labels.get("alertname") in TRIGGER_ALERTNAMES or labels.get("rollback_tier") in TIERS:
        return True
    return settings is not None and trigger_kind(labels, settings)[0] is not None


def as_delivered(raw: Mapping[str, Any], external: Mapping[str, str]) -> Alert:
    """The alert as Alertmanager would get it; the alert's own labels win over external ones."""
    labels = {**external, **{str(k): str(v) for k, v in (raw.get("labels") or {}).items()}}
    return Alert(
        status="firing",
        labels=labels,
        annotations={str(k): str(v) for k, v in (raw.get("annotations") or {}).items()},
        starts_at=alertmanager_time(str(raw.get("activeAt") or "")),
        ends_at=ZERO_TIME,
        generator_url="",
        fingerprint=label_fingerprint(labels),
    )


@dataclass(frozen=True)
class TriggerOutcome:
    """What the engine decided for one firing trigger (and how a rollback it started ended)."""

    alertname: str
    service: str
    namespace: str
    fingerprint: str
    starts_at: str
    decision: str
    reason: str
    rollback_id: str | None = None
    final_state: str | None = None  # after waiting, for a rollback this run started

    @property
    def started(self) -> bool:
        return self.decision == Decision.ROLLBACK and self.rollback_id is not None

    @property
    def failed(self) -> bool:
        return self.started and self.final_state not in (None, State.COMPLETED)

    def line(self) -> str:
        text = (
            f"{self.alertname} {self.service}/{self.namespace} fingerprint={self.fingerprint} "
            f"startsAt={self.starts_at}: {self.decision} ({self.reason})"
        )
        if self.rollback_id:
            text += f" {self.rollback_id}"
        if self.final_state:
            text += f" -> {self.final_state}"
        return text


@dataclass(frozen=True)
class MonitorResult:
    """One evaluation: every firing trigger's outcome, what the sweep did, or why it could not."""

    outcomes: tuple[TriggerOutcome, ...] = ()
    swept: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None  # could not evaluate (Prometheus or Redis unreachable)
    unfinished: bool = False  # a rollback it started had not ended when the wait ran out

    @property
    def started(self) -> tuple[TriggerOutcome, ...]:
        return tuple(o for o in self.outcomes if o.started)

    @property
    def exit_code(self) -> int:
        if any(o.failed for o in self.outcomes) or self.unfinished:
            return EXIT_ROLLBACK_FAILED
        if self.error is not None:
            return EXIT_CANNOT_EVALUATE
        return EXIT_OK

    def lines(self) -> list[str]:
        out = [o.line() for o in self.outcomes]
        done = {k: v for k, v in self.swept.items() if v}
        if done:
            out.append("sweep: " + ", ".join(f"{k}={v}" for k, v in sorted(done.items())))
        if self.unfinished:
            out.append("error: a rollback started by this run had not ended when the wait ran out")
        if self.error is not None:
            out.append(f"error: could not evaluate: {self.error}")
        if not self.outcomes and self.error is None:
            out.append("no firing trigger alerts")
        return out


def default_wait_seconds(engine: Engine) -> float:
    """Long enough for actions, Argo CD validation and the stabilisation check to finish."""
    s = engine.settings
    return float(s.validation_timeout_seconds + s.stabilization_seconds + 300)


def _order(alert: Alert, settings: Settings) -> tuple[bool, str, str, str]:
    """Emergencies first, so a critical trigger of the same service finds the lock taken."""
    trigger = classify(alert, settings)
    return (trigger.tier != "emergency", trigger.service, alert.alertname, alert.starts_at)


def run_once(
    engine: Engine,
    prometheus: PrometheusClient,
    *,
    wait: bool = True,
    wait_seconds: float | None = None,
) -> MonitorResult:
    """Sweep, then put every firing trigger of a configured service through the engine.

    With `wait`, rollbacks started here run to their end before it returns (`--once`).
    """
    try:
        swept = sweep_once(engine)
    except ReceiverError as exc:
        return MonitorResult(error=exc.message)
    try:
        raw_alerts = prometheus.alerts()
        external = external_labels(prometheus)
    except PrometheusUnavailable as exc:
        return MonitorResult(swept=swept, error=str(exc))
    alerts = sorted(
        (
            as_delivered(raw, external)
            for raw in raw_alerts
            if is_firing_trigger(raw, engine.settings)
        ),
        key=lambda alert: _order(alert, engine.settings),
    )
    # Decided like one delivery: gathered concurrently, reserved in order, one digest.
    bases: list[tuple[TriggerOutcome, bool]] = []  # (outcome if not decided, ours to decide)
    mine: list[Alert] = []
    for alert in alerts:
        trigger = classify(alert, engine.settings)
        ours = engine.settings.target_for(trigger.service) is not None
        bases.append((_not_configured(trigger, alert), ours))
        if ours:
            mine.append(alert)
    error = None
    try:
        decided = iter(engine.handle_delivery(mine, actor="monitor"))
    except ReceiverError as exc:
        error, decided = exc.message, iter(())
    outcomes: list[TriggerOutcome] = []
    for base, ours in bases:
        outcome = next(decided, None) if ours else None
        if ours and outcome is None:  # the round failed (Redis): nothing more to report
            break
        outcomes.append(
            base
            if outcome is None
            else replace(
                base,
                decision=outcome.decision,
                reason=outcome.reason,
                rollback_id=outcome.rollback_id,
            )
        )
    result = MonitorResult(tuple(outcomes), swept, error)
    # The sweep's rollbacks too, and, when Redis failed mid-round, whatever the round started.
    if wait and (result.started or swept.get("vetoed") or error):
        result = _wait_for_rollbacks(engine, result, wait_seconds)
    return result


def _not_configured(trigger: Trigger, alert: Alert) -> TriggerOutcome:
    """An alert of another deployment's service: not ours to decide."""
    fields = (trigger.alertname, trigger.service, trigger.namespace, alert.fingerprint)
    return TriggerOutcome(*fields, alert.starts_at, "ignored", "not_configured")


def _wait_for_rollbacks(
    engine: Engine, result: MonitorResult, wait_seconds: float | None
) -> MonitorResult:
    """Wait for the rollbacks this run started; note how each ended."""
    finished = engine.wait_idle(
        wait_seconds if wait_seconds is not None else default_wait_seconds(engine)
    )
    outcomes = []
    for outcome in result.outcomes:
        if outcome.started and outcome.rollback_id:
            try:
                state = engine.get_record(outcome.rollback_id).state
            except ReceiverError:
                state = "unknown"
            outcome = replace(outcome, final_state=state)
        outcomes.append(outcome)
    return replace(result, outcomes=tuple(outcomes), unfinished=not finished)


def run_forever(
    engine: Engine,
    prometheus: PrometheusClient,
    interval: float,
    stop: threading.Event,
    report: Callable[[MonitorResult], None],
) -> None:
    """Evaluate every `interval` seconds until `stop` is set; rollbacks run in the background."""
    while not stop.is_set():
        try:
            report(run_once(engine, prometheus, wait=False))
        except Exception:  # one bad round must not end the loop
            log.exception("monitor round failed")
        stop.wait(interval)
