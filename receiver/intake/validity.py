"""Bounds on what an alert may carry before the receiver uses it.

An alert whose identity (alertname, fingerprint, startsAt) or a label the receiver reads is
longer than `MAX_FIELD_CHARS` or not valid Unicode text (a lone surrogate) cannot be used as a
Redis key, a path or a metric label: it is decided `skipped`/`invalid_alert` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from receiver.intake.payload import Alert

MAX_FIELD_CHARS = 1024
# How much of an unusable value an answer, a record or a log line keeps.
SHOWN_CHARS = 80
# The labels the receiver reads (contract, "Alerts the receiver acts on").
READ_LABELS = ("alertname", "service", "namespace", "rollback_tier", "argocd_app", "gitops_path")


def unusable_reason(text: str) -> str | None:
    """Why a value cannot be used as a key, path or label; None when it can."""
    if len(text) > MAX_FIELD_CHARS:
        return f"longer than {MAX_FIELD_CHARS} characters ({len(text)})"
    if text.isascii():  # no surrogate can hide in ASCII: the common case, without a copy
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode text (a lone surrogate)"
    return None


def first_unusable_field(alert: Alert, labels: Iterable[str] = READ_LABELS) -> str | None:
    """`<field> is <why>` for the first field of the alert the receiver cannot use, else None."""
    fields = [("fingerprint", alert.fingerprint), ("startsAt", alert.starts_at)]
    fields += [(f"labels.{name}", alert.labels[name]) for name in labels if name in alert.labels]
    for name, value in fields:
        why = unusable_reason(value)
        if why is not None:
            return f"{name} is {why}"
    return None


def shown(text: str) -> str:
    """A value cut to `SHOWN_CHARS`, lone surrogates escaped: safe to answer, store and log."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(safe) <= SHOWN_CHARS:
        return safe
    return f"{safe[:SHOWN_CHARS]}... ({len(text)} characters)"


def shown_alert(alert: Alert) -> Alert:
    """A copy of the alert with every key and value cut and escaped by `shown`."""

    def cut(values: dict[str, str] | object) -> dict[str, str]:
        assert isinstance(values, dict)
        return {shown(k): shown(v) for k, v in list(values.items())[:64]}

    return replace(
        alert,
        labels=cut(dict(alert.labels)),
        annotations=cut(dict(alert.annotations)),
        starts_at=shown(alert.starts_at),
        ends_at=shown(alert.ends_at),
        generator_url=shown(alert.generator_url),
        fingerprint=shown(alert.fingerprint),
    )
