"""Alertmanager webhook payload (version 4) -> typed, frozen objects.

Mirrors Alertmanager's `notify/webhook.Message` and `template.Data`/`Alert`.
Unknown fields are ignored, and the newer ones (`notification_reason`,
`routeLabels`) are optional, so payloads from 0.25 through 0.34 parse alike.
A bad payload raises `BadRequest` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.errors import BadRequest

ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Alert:
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    ends_at: str
    generator_url: str
    fingerprint: str

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Message:
    version: str
    group_key: str
    truncated_alerts: int
    status: str
    receiver: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    alerts: tuple[Alert, ...]
    notification_reason: str | None = None
    route_labels: Mapping[str, str] = field(default_factory=dict)


def _labels(value: Any, where: str, required: bool = False) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise BadRequest(f"{where}.{key} must be a string")
    return dict(value)


def _string(value: Any, where: str, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadRequest(
            f"{where} must be a non-empty string" if required else f"{where} must be a string"
        )
    return value


def _timestamp(value: Any, where: str, required: bool = False) -> str:
    text = _string(value, where, required)
    if text:
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{where} is not an RFC 3339 timestamp") from None
    return text


def parse_alert(raw: Any, index: int) -> Alert:
    """One `alerts[i]` entry; status, labels and fingerprint are required."""
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object")
    status = raw.get("status")
    if status not in ("firing", "resolved"):
        raise BadRequest(f"{where}.status must be 'firing' or 'resolved'")
    if "labels" not in raw:
        raise BadRequest(f"{where}.labels is missing")
    return Alert(
        status=status,
        labels=_labels(raw.get("labels"), f"{where}.labels", required=True),
        annotations=_labels(raw.get("annotations"), f"{where}.annotations"),
        starts_at=_timestamp(raw.get("startsAt"), f"{where}.startsAt"),
        ends_at=_timestamp(raw.get("endsAt"), f"{where}.endsAt") or ZERO_TIME,
        generator_url=_string(raw.get("generatorURL"), f"{where}.generatorURL"),
        fingerprint=_string(raw.get("fingerprint"), f"{where}.fingerprint", required=True),
    )


def parse_message(raw: Any) -> Message:
    """A whole delivery. Raises BadRequest naming the first bad field."""
    if not isinstance(raw, dict):
        raise BadRequest("payload must be a JSON object")
    alerts = raw.get("alerts")
    if not isinstance(alerts, list):
        raise BadRequest("alerts must be a list")
    truncated = raw.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise BadRequest("truncatedAlerts must be a non-negative integer")
    version = raw.get("version", "4")
    if not isinstance(version, str):
        raise BadRequest("version must be a string")
    status = raw.get("status", "firing")
    if status not in ("firing", "resolved"):
        raise BadRequest("status must be 'firing' or 'resolved'")
    reason = raw.get("notification_reason")
    return Message(
        version=version,
        group_key=_string(raw.get("groupKey"), "groupKey"),
        truncated_alerts=truncated,
        status=status,
        receiver=_string(raw.get("receiver"), "receiver"),
        group_labels=_labels(raw.get("groupLabels"), "groupLabels"),
        common_labels=_labels(raw.get("commonLabels"), "commonLabels"),
        common_annotations=_labels(raw.get("commonAnnotations"), "commonAnnotations"),
        external_url=_string(raw.get("externalURL"), "externalURL"),
        alerts=tuple(parse_alert(item, i) for i, item in enumerate(alerts)),
        notification_reason=reason if isinstance(reason, str) else None,
        route_labels=_labels(raw.get("routeLabels"), "routeLabels"),
    )
