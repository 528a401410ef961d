"""Slack's "pending approval" message links to the console's approvals page."""

from __future__ import annotations

import json

from receiver.tell import base
from receiver.tell.slack import SlackNotifier


def pending(**overrides: object) -> base.Event:
    fields: dict[str, object] = {
        "kind": base.PENDING_APPROVAL,
        "service": "checkout",
        "namespace": "production",
        "tier": "emergency",
        "reason": "approval_required",
        "rollback_id": "rb-20261126-0001",
    }
    return base.Event(**{**fields, **overrides})  # type: ignore[arg-type]


def test_a_pending_approval_links_to_the_console_when_public_url_is_set() -> None:
    slack = SlackNotifier("http://127.0.0.1:9/hook", public_url="https://rollback.example.com")
    text = json.dumps(slack.message(pending()))
    assert "<https://rollback.example.com/ui/approvals|approve or reject in the console>" in text
    slack.close()


def test_without_public_url_there_is_no_console_link() -> None:
    slack = SlackNotifier("http://127.0.0.1:9/hook")
    assert "/ui/approvals" not in json.dumps(slack.message(pending()))
    slack.close()
