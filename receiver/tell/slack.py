"""Slack incoming webhook: one Block Kit message per event, with a plain `text` fallback.

Slack answers 200 `ok` on success, 429 with Retry-After when rate limited, a plain-text
error string (`invalid_payload`, `channel_not_found`, ...) otherwise (API-FACTS E.1).
429, 5xx and network errors are retried a bounded number of times; other answers fail at
once with Slack's error string. The webhook URL is a secret: it never appears in an error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import requests

from receiver.tell import base, wording
from receiver.tell.delivery import RetryableError, deliver, retry_after_seconds

EMOJI = {
    base.PENDING_APPROVAL: ":hourglass:",
    base.STARTED: ":rewind:",
    base.COMPLETED: ":white_check_mark:",
    base.FAILED: ":x:",
    base.NOT_EFFECTIVE: ":warning:",
    base.INTERRUPTED: ":octagonal_sign:",
    base.ESCALATION: ":rotating_light:",
    base.BLOCKED_EMERGENCY: ":rotating_light:",
    base.APPROVAL_EXPIRED: ":hourglass_flowing_sand:",
    base.REJECTED: ":no_entry:",
}
UNVERIFIED_TEXT = (
    "*Errors:* not verified: Prometheus had no error-ratio sample of traffic served after "
    "the rollback went live (no data, no traffic, or unreachable). Check the service by hand."
)
_SAFE_URL = re.compile(r"^https?://[^\s<>|]+$")


class SecretLike(Protocol):
    def get(self) -> str | None: ...


SecretSource = SecretLike | str | Callable[[], str | None]


def read_secret(source: SecretSource) -> str | None:
    """The current value of a Secret, a plain string, or a getter (read per send: rotation)."""
    if isinstance(source, str):
        return source
    getter = getattr(source, "get", None)
    if callable(getter):
        value = getter()
    elif callable(source):
        value = source()
    else:
        raise TypeError("expected a Secret, a string or a callable")
    return None if value is None else str(value)


def escape(text: str) -> str:
    """Slack mrkdwn escaping: &, < and > only."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def continuation_text(event: base.Event, continues: dict[str, Any]) -> str:
    """Which burst a follow-up digest continues, and what it adds (mrkdwn).

    An incoming webhook can neither edit the first message nor reply in its thread (its
    answer is `ok`, without the message's ts), so the follow-up says it in words."""
    said = str(wording.continues_text(event))
    first = ", ".join(str(s) for s in continues.get("first_services") or [])
    added = [str(s) for s in continues.get("added") or []]
    return (
        f"*{escape(said[:1].upper() + said[1:])}* ({escape(first)})\n"
        f"*Added since ({len(added)}):* {escape(', '.join(added))}"
    )


class SlackNotifier(base.Notifier):
    """Posts Block Kit messages to a Slack incoming webhook (SLACK_WEBHOOK)."""

    channel: ClassVar[str] = "slack"
    kinds: ClassVar[frozenset[str]] = frozenset(EMOJI)

    def __init__(
        self,
        webhook_url: SecretSource,
        session: requests.Session | None = None,
        retries: int = 3,
        timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 30.0,
        public_url: str | None = None,
    ) -> None:
        self._webhook_url = webhook_url
        self.session = session or requests.Session()
        self.retries = retries
        self.timeout = timeout
        self.sleep = sleep
        self.max_wait = max_wait
        self.public_url = public_url.rstrip("/") if public_url else None

    def wants(self, event: base.Event) -> bool:
        return event.kind in self.kinds

    def send(self, event: base.Event) -> None:
        url = read_secret(self._webhook_url)
        if not url:
            raise base.NotificationError("slack: SLACK_WEBHOOK is empty")
        body = self.message(event)
        deliver(
            lambda: self._post(url, body),
            retries=self.retries,
            sleep=self.sleep,
            max_wait=self.max_wait,
        )

    def close(self) -> None:
        self.session.close()

    def _post(self, url: str, body: dict[str, Any]) -> None:
        try:
            response = self.session.post(url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetryableError(f"slack: cannot reach Slack: {exc.__class__.__name__}") from None
        text = response.text.strip()[:200].replace(url, "<redacted>")
        if response.status_code == 200 and text == "ok":
            return
        if response.status_code == 429:
            raise RetryableError(
                "slack: rate limited (429)",
                retry_after_seconds(response.headers.get("Retry-After")),
            )
        if response.status_code >= 500:
            raise RetryableError(f"slack: {response.status_code} {text or response.reason}")
        raise base.NotificationError(f"slack: {response.status_code} {text or response.reason}")

    # -- the message ------------------------------------------------------------------------
    def approve_url(self, event: base.Event) -> str | None:
        if event.links.get("approve"):
            return event.links["approve"]
        if self.public_url and event.rollback_id:
            return f"{self.public_url}/api/v1/rollbacks/{event.rollback_id}/approve"
        return None

    def message(self, event: base.Event) -> dict[str, Any]:
        """The webhook body: Block Kit blocks plus the `text` fallback (notifications)."""
        emoji = ":grey_question:" if base.errors_unverified(event) else EMOJI.get(event.kind)
        headline = f"{emoji or ':information_source:'} {wording.title(event)}"
        fields = [("Service", f"{event.service} ({event.namespace})"), ("Tier", event.tier)]
        consumed = wording.consumed_text(event.consumed)
        if consumed:
            fields.append(("Budget consumed", consumed))
        if event.from_revision or event.to_revision:
            fields.append(
                ("Revision", f"`{event.from_revision or '?'}` → `{event.to_revision or '?'}`")
            )
        if event.rollback_id:
            fields.append(("Rollback", f"`{event.rollback_id}`"))
        if event.actor:
            fields.append(("By", event.actor))
        if event.stage:
            fields.append(("Stage", event.stage))
        fields.append(("Mode", "automatic" if event.automatic else "manual"))
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": headline[:150], "emoji": True},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{escape(value)}"[:2000]}
                    for name, value in fields[:10]
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": (f"*Reason:* {escape(wording.reason_text(event.reason))}")[:3000],
                },
            },
        ]
        if base.errors_unverified(event):
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": UNVERIFIED_TEXT},
                }
            )
        burst = wording.burst_of(event)
        continues = wording.continued_burst(event)
        if continues is not None:
            text = continuation_text(event, continues)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
        if burst:
            label = "Services so far" if continues is not None else "Services"
            text = f"*{label} ({len(burst)}):* " + escape(", ".join(burst))
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
        if event.error:
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": (f"*Error:* {escape(event.error)}")[:3000]},
                }
            )
        if event.kind == base.PENDING_APPROVAL and event.rollback_id:
            lines = []
            if self.public_url:
                console = f"{self.public_url}/ui/approvals"
                lines.append(f"*Console:* <{console}|approve or reject in the console>")
            approve = self.approve_url(event)
            if approve:
                lines.append(f"*Approve:* `POST {escape(approve)}` (ADMIN_TOKEN)")
            lines.append(
                f"*CLI:* `rollback-receiver approve {escape(event.rollback_id)}` "
                f"or `rollback-receiver reject {escape(event.rollback_id)}`"
            )
            deadline = event.details.get("expires_at")
            if deadline:
                lines.append(f"*Expires:* {escape(str(deadline))}")
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}
            )
        links = self._links(event)
        if links:
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": " | ".join(links)[:3000]}],
                }
            )
        return {"text": wording.summary(event), "blocks": blocks}

    def _links(self, event: base.Event) -> list[str]:
        links = dict(event.links)
        approve = self.approve_url(event) if event.kind == base.PENDING_APPROVAL else None
        if approve:
            links["approve"] = approve
        else:
            links.pop("approve", None)
        out = []
        for key, url in links.items():
            if url and _SAFE_URL.match(url):
                out.append(f"<{url}|{escape(wording.link_name(key))}>")
        return out
