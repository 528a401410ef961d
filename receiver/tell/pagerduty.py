"""PagerDuty Events API v2, as the contract fixes it ("Notifications").

- an automatic rollback starts: `trigger`, severity `warning` (critical tier) or `critical`
  (emergency), dedup_key = rollback id: on-call learns production is being changed;
- it completes: `resolve` the same key, once errors of the traffic after the rollback fell;
  when that could not be verified (`errors_fell: unknown`) a `trigger` on the same key at the
  start's severity instead: the incident stays open for a human;
- it fails, is not effective, or is interrupted: re-`trigger` the same key at `critical`;
- an escalation (already rolled back, no recent change, global limit) or a blocked
  emergency: `trigger` with dedup_key = `service:episode` (`error` for the critical tier,
  `critical` for emergency); the follow-up digest of a burst re-`trigger`s its first
  event's dedup_key, so PagerDuty adds it to the alert that is open (API-FACTS E.2).

Manual rollbacks (a human started them and is watching): no page on start or completion,
but a failed, not-effective or interrupted manual rollback pages like an automatic one.
Success is 202; 400 fails at once with PagerDuty's `errors`; 429, 5xx and network errors
are retried with backoff, a bounded number of times. The routing key is never in an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests

from receiver.tell import base, wording
from receiver.tell.delivery import RetryableError, deliver, retry_after_seconds
from receiver.tell.slack import SecretSource, read_secret

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
_PAGE_AGAIN = (base.FAILED, base.NOT_EFFECTIVE, base.INTERRUPTED)
_EPISODE_KINDS = (base.ESCALATION, base.BLOCKED_EMERGENCY)


class PagerDutyNotifier(base.Notifier):
    """Sends Events API v2 events for rollbacks that change production or need a human."""

    channel: ClassVar[str] = "pagerduty"

    def __init__(
        self,
        routing_key: SecretSource,
        url: str = DEFAULT_URL,
        session: requests.Session | None = None,
        retries: int = 3,
        timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        base_delay: float = 2.0,
        max_wait: float = 30.0,
        source: str = "rollback-receiver",
    ) -> None:
        self._routing_key = routing_key
        self.url = url
        self.session = session or requests.Session()
        self.retries = retries
        self.timeout = timeout
        self.sleep = sleep
        self.base_delay = base_delay
        self.max_wait = max_wait
        self.source = source

    def wants(self, event: base.Event) -> bool:
        if event.kind in (base.STARTED, base.COMPLETED):
            return event.automatic and bool(event.rollback_id)
        if event.kind in _PAGE_AGAIN:
            return bool(event.rollback_id)
        return event.kind in _EPISODE_KINDS

    def send(self, event: base.Event) -> None:
        key = read_secret(self._routing_key)
        if not key:
            raise base.NotificationError("pagerduty: PAGERDUTY_KEY is empty")
        body = self.event_body(event, key)
        deliver(
            lambda: self._post(body),
            retries=self.retries,
            sleep=self.sleep,
            base_delay=self.base_delay,
            max_wait=self.max_wait,
        )

    def close(self) -> None:
        self.session.close()

    @staticmethod
    def action_of(event: base.Event) -> str:
        """`resolve` a verified completion; anything else (an unverified one too) `trigger`s."""
        if event.kind == base.COMPLETED and not base.errors_unverified(event):
            return "resolve"
        return "trigger"

    @staticmethod
    def dedup_key_of(event: base.Event) -> str:
        """The rollback id for a rollback's events; `service:episode` for escalations (for a
        burst's follow-up digest, the key its first event was sent with)."""
        continues = wording.continued_burst(event)
        if continues is not None and continues.get("dedup_key"):
            return str(continues["dedup_key"])
        if event.kind in _EPISODE_KINDS:
            return wording.episode_key(event.service, event.episode, event.rollback_id)
        return str(event.rollback_id)

    @staticmethod
    def severity_of(event: base.Event) -> str:
        if event.kind == base.STARTED or base.errors_unverified(event):
            return "critical" if event.tier == "emergency" else "warning"
        if event.kind == base.ESCALATION:
            return "critical" if event.tier == "emergency" else "error"
        return "critical"

    def event_body(self, event: base.Event, routing_key: str) -> dict[str, Any]:
        """The Events API v2 body for this event."""
        body: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": self.action_of(event),
            "dedup_key": self.dedup_key_of(event),
        }
        if body["event_action"] == "resolve":
            return body
        details: dict[str, Any] = {
            "kind": event.kind,
            "service": event.service,
            "namespace": event.namespace,
            "tier": event.tier,
            "reason": wording.reason_text(event.reason),
            "automatic": event.automatic,
        }
        optional = {
            "rollback_id": event.rollback_id,
            "episode": event.episode,
            "budget_consumed": wording.consumed_text(event.consumed),
            "from_revision": event.from_revision,
            "to_revision": event.to_revision,
            "error": event.error,
            "stage": event.stage,
            "actor": event.actor,
        }
        details.update({k: v for k, v in optional.items() if v is not None})
        if wording.burst_of(event):
            details["services"] = wording.burst_of(event)
        details.update(wording.burst_facts(event))
        if base.errors_unverified(event):
            details["errors_fell"] = base.ERRORS_UNKNOWN
        body["payload"] = {
            "summary": wording.summary(event)[:1024],
            "source": f"{event.namespace}/{event.service}",
            "severity": self.severity_of(event),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "component": event.service,
            "group": event.namespace,
            "class": event.kind,
            "custom_details": details,
        }
        body["client"] = self.source
        links = [
            {"href": url, "text": wording.link_name(name)}
            for name, url in event.links.items()
            if url and url.startswith(("http://", "https://"))
        ]
        if links:
            body["links"] = links
        return body

    def _post(self, body: dict[str, Any]) -> None:
        try:
            response = self.session.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetryableError(
                f"pagerduty: cannot reach PagerDuty: {exc.__class__.__name__}"
            ) from None
        if response.status_code == 202:
            return
        detail = self._error_detail(response).replace(str(body["routing_key"]), "<redacted>")
        if response.status_code == 429:
            raise RetryableError(
                f"pagerduty: rate limited (429) {detail}".rstrip(),
                retry_after_seconds(response.headers.get("Retry-After")),
            )
        if response.status_code >= 500:
            raise RetryableError(f"pagerduty: {response.status_code} {detail}".rstrip())
        raise base.NotificationError(f"pagerduty: {response.status_code} {detail}".rstrip())

    @staticmethod
    def _error_detail(response: requests.Response) -> str:
        """PagerDuty's `message: errors`, as Alertmanager's errDetails reads them."""
        try:
            data = response.json()
        except ValueError:
            return response.text.strip()[:200]
        if not isinstance(data, dict):
            return str(data)[:200]
        message = str(data.get("message") or data.get("status") or "")
        errors = data.get("errors") or []
        if isinstance(errors, list) and errors:
            return f"{message}: {'; '.join(str(e) for e in errors)}"[:500]
        return message[:500]
