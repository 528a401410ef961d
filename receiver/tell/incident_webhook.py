"""INCIDENT_WEBHOOK: incident events as JSON `{type, rollback_id, service, tier, state, record}`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from receiver.tell import base, wording
from receiver.tell.delivery import RetryableError, deliver, retry_after_seconds
from receiver.tell.incident_text import (
    CHANNEL,
    STATES,
    WEBHOOK_TYPES,
    SecretValue,
    burst_services,
    wanted,
)


class IncidentWebhookNotifier(base.Notifier):
    """The incident events as JSON for a bridge (INCIDENT_WEBHOOK, optional bearer token)."""

    channel = CHANNEL

    def __init__(
        self,
        url: SecretValue,
        token: SecretValue | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retries: int = 3,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.token = token
        self.sleep = sleep
        self.retries = retries
        self.timeout = timeout
        self.session = requests.Session()

    def wants(self, event: base.Event) -> bool:
        return wanted(event)

    def payload(self, event: base.Event) -> dict[str, Any]:
        """`{type, rollback_id, service, tier, state, record}`."""
        record = event.details.get("record")
        if not isinstance(record, dict):
            record = {
                "id": event.rollback_id,
                "service": event.service,
                "namespace": event.namespace,
                "tier": event.tier,
                "reason": event.reason,
                "state": STATES[event.kind],
                "rolled_back_from": {"commit": event.from_revision},
                "target": {"commit": event.to_revision},
                "error": event.error,
                "stage": event.stage,
                "links": dict(event.links),
                "services": burst_services(event),
                **wording.burst_facts(event),  # burst_id: the same on a burst's every event
            }
        return {
            "type": WEBHOOK_TYPES[event.kind],
            "rollback_id": event.rollback_id,
            "service": event.service,
            "tier": event.tier,
            "state": STATES[event.kind],
            "record": record,
        }

    def send(self, event: base.Event) -> None:
        url = self.url.get()
        if not url:
            raise base.NotificationError("INCIDENT_WEBHOOK is empty")
        headers = {"Content-Type": "application/json"}
        token = self.token.get() if self.token is not None else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = self.payload(event)

        def attempt() -> None:
            try:
                answer = self.session.post(url, json=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                raise RetryableError(
                    f"incident webhook unreachable ({exc.__class__.__name__})"
                ) from None
            with answer:
                if 200 <= answer.status_code < 300:
                    return
                text = f"incident webhook answered {answer.status_code}"
                if answer.status_code == 429 or answer.status_code >= 500:
                    raise RetryableError(
                        text, retry_after_seconds(answer.headers.get("Retry-After"))
                    )
                raise base.NotificationError(text)

        deliver(attempt, retries=self.retries, sleep=self.sleep)

    def close(self) -> None:
        self.session.close()
