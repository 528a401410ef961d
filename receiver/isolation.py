"""Per-alert isolation: one alert's unexpected error, or its junk, never sinks the delivery.

`skip_on_error` turns an unexpected error while deciding one alert into its own
`skipped`/`internal_error` decision (the traceback goes to the log only; an unreachable store
still fails the delivery, so Alertmanager retries). `count_skip` counts a skip under a bounded
`service` label and names the shared history index of an invalid or unconfigured service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from receiver import metrics
from receiver.config import Settings
from receiver.decide.checks import (
    INVALID_SERVICE,
    UNCONFIGURED_SERVICE,
    Check,
    counted_service,
    looks_like_emergency,
)
from receiver.decide.policy import Facts, Trigger, Verdict, classify
from receiver.decide.vocabulary import Decision, SkipReason
from receiver.errors import StoreUnavailable
from receiver.intake.payload import Alert
from receiver.intake.validity import shown_alert
from receiver.state import skips
from receiver.state.history import RollbackRecord, new_id
from receiver.state.store import Store

log = logging.getLogger("receiver.pipeline")
StepT = TypeVar("StepT")
StepFactory = Callable[[Trigger, str, None, Facts, Verdict, None], StepT]


def count_skip(trigger: Trigger, reason: str, settings: Settings) -> str | None:
    """Count a skip; the shared index (`_invalid`, `_unconfigured`) its record goes to, if any."""
    counted_as = counted_service(trigger, settings)
    metrics.SKIPPED.labels(counted_as, reason).inc()
    return counted_as if counted_as in (INVALID_SERVICE, UNCONFIGURED_SERVICE) else None


def failed_trigger(alert: Alert, settings: Settings) -> Trigger:
    """The trigger an alert whose decision failed is recorded as (cut labels when unusable)."""
    try:
        trigger = classify(alert, settings)
    except Exception:
        trigger = classify(shown_alert(alert), settings)
    if trigger.unusable is None and trigger.service != counted_service(trigger, settings):
        trigger = replace(trigger, alert=shown_alert(alert))
    return replace(trigger, tier="emergency" if looks_like_emergency(alert) else trigger.tier)


def skip_on_error(
    error: Exception, alert: Alert, settings: Settings, make_step: StepFactory[StepT]
) -> StepT:
    """The `internal_error` step of an alert whose decision raised (StoreUnavailable re-raised)."""
    if isinstance(error, StoreUnavailable):
        raise error
    log.error(
        "unexpected error deciding an alert: skipped as internal_error",
        exc_info=error,
        extra={"fingerprint": alert.fingerprint[:80], "rollback_id": None},
    )
    check = Check(SkipReason.INTERNAL_ERROR, False, "unexpected error; see the receiver log")
    verdict = Verdict(Decision.SKIPPED, SkipReason.INTERNAL_ERROR, (check,))
    facts = Facts(datetime.now(UTC))
    return make_step(failed_trigger(alert, settings), new_id(), None, facts, verdict, None)


def keep_skip(
    store: Store, settings: Settings, step: Any, record: RollbackRecord
) -> RollbackRecord:
    """Count a skip and write its record, or count it on the episode's earlier same-reason skip."""
    indexed_as = count_skip(step.trigger, step.verdict.reason, settings)
    episode = None if step.request else step.trigger.episode
    return skips.record_skip(store, record, episode, indexed_as)
