"""Slack notifier against a loopback sink that answers like Slack's incoming webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from receiver.config import Secret
from receiver.tell import base
from receiver.tell.slack import SlackNotifier
from tests.fakes_notify import SlackSink
from tests.procs import free_port

ALL_KINDS = (
    base.PENDING_APPROVAL,
    base.STARTED,
    base.COMPLETED,
    base.FAILED,
    base.NOT_EFFECTIVE,
    base.INTERRUPTED,
    base.ESCALATION,
    base.BLOCKED_EMERGENCY,
    base.APPROVAL_EXPIRED,
    base.REJECTED,
)


@pytest.fixture
def sink() -> Iterator[SlackSink]:
    with SlackSink() as running:
        yield running


class Sleeps:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def notifier(sink: SlackSink, sleeps: Sleeps) -> Iterator[SlackNotifier]:
    slack = SlackNotifier(
        sink.url, retries=3, sleep=sleeps, timeout=2.0, public_url="https://rollback.example.com"
    )
    yield slack
    slack.close()


def event(kind: str = base.STARTED, **overrides: Any) -> base.Event:
    fields: dict[str, Any] = dict(
        kind=kind,
        service="checkout",
        namespace="production",
        tier="critical",
        reason="passed",
        rollback_id="rb-20261126-0001",
        episode="abc123:2026-11-26T10:00:00Z:critical",
        consumed=0.834,
        from_revision="9f8e7d6",
        to_revision="1a2b3c4",
        links={
            "commit": "https://github.com/acme/gitops/commit/1a2b3c4",
            "argocd": "https://argocd.example.com/applications/checkout-prod",
            "alert": "http://prometheus:9090/graph?g0.expr=slo",
        },
    )
    fields.update(overrides)
    return base.Event(**fields)


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_posts_blocks_with_a_text_fallback_naming_the_essentials(
    notifier: SlackNotifier, sink: SlackSink, kind: str
) -> None:
    assert notifier.wants(event(kind))
    notifier.send(event(kind))
    (message,) = sink.messages
    assert "checkout" in message["text"] and "critical tier" in message["text"]
    assert message["blocks"][0]["type"] == "header"
    text = all_text(message)
    for needle in (
        "checkout",
        "production",
        "critical",
        "83%",
        "9f8e7d6",
        "1a2b3c4",
        "passed",
        "rb-20261126-0001",
        "github.com/acme/gitops/commit/1a2b3c4|Commit",
        "checkout-prod|Argo CD app",
        "prometheus:9090/graph?g0.expr=slo|Alert source",
    ):
        assert needle in text, needle


def test_approved_events_are_not_sent_to_slack(notifier: SlackNotifier) -> None:
    assert not notifier.wants(event(base.APPROVED))


def test_a_pending_approval_says_how_to_approve_by_api_and_cli(
    notifier: SlackNotifier, sink: SlackSink
) -> None:
    notifier.send(
        event(
            base.PENDING_APPROVAL,
            reason="approval_required",
            details={"expires_at": "2026-11-26T10:30:00Z"},
        )
    )
    text = all_text(sink.messages[0])
    approve = "https://rollback.example.com/api/v1/rollbacks/rb-20261126-0001/approve"
    assert f"POST {approve}" in text
    assert "rollback-receiver approve rb-20261126-0001" in text
    assert "rollback-receiver reject rb-20261126-0001" in text
    assert "2026-11-26T10:30:00Z" in text


def test_an_approve_link_is_shown_only_while_approval_is_pending(
    notifier: SlackNotifier, sink: SlackSink
) -> None:
    notifier.send(event(base.STARTED, links={"approve": "https://x.example/approve"}))
    assert "approve" not in all_text(sink.messages[0]).lower().replace("approval", "")


def test_failures_name_stage_and_error_and_escape_mrkdwn(
    notifier: SlackNotifier, sink: SlackSink
) -> None:
    notifier.send(
        event(
            base.FAILED,
            stage="argocd",
            reason="argocd",
            error="rollback cannot be initiated when <auto-sync> & co",
        )
    )
    text = all_text(sink.messages[0])
    assert "argocd" in text
    assert "&lt;auto-sync&gt; &amp; co" in text


def test_an_escalation_explains_its_reason(notifier: SlackNotifier, sink: SlackSink) -> None:
    notifier.send(event(base.ESCALATION, reason="already_rolled_back", rollback_id=None))
    text = all_text(sink.messages[0])
    assert "needs a human" in text
    assert "already_rolled_back (the running revision is one this receiver" in text


def test_links_that_are_not_http_urls_are_left_out(
    notifier: SlackNotifier, sink: SlackSink
) -> None:
    notifier.send(event(links={"commit": "javascript:alert(1)", "argocd": "https://a/b|c"}))
    text = all_text(sink.messages[0])
    assert "javascript" not in text and "https://a/b" not in text


def test_a_rate_limited_message_waits_as_slack_asks_and_then_succeeds(
    notifier: SlackNotifier, sink: SlackSink, sleeps: Sleeps
) -> None:
    sink.rate_limit_next(retry_after=7, times=2)
    notifier.send(event())
    assert sleeps.waits == [7.0, 7.0]
    assert len(sink.received) == 3
    assert len(sink.messages) == 3


def test_a_huge_retry_after_is_capped(sink: SlackSink, sleeps: Sleeps) -> None:
    slack = SlackNotifier(sink.url, retries=1, sleep=sleeps, max_wait=30.0)
    sink.rate_limit_next(retry_after=3600)
    slack.send(event())
    slack.close()
    assert sleeps.waits == [30.0]


def test_a_429_without_retry_after_backs_off(
    notifier: SlackNotifier, sink: SlackSink, sleeps: Sleeps
) -> None:
    sink.rate_limit_next(retry_after=None, times=2)
    notifier.send(event())
    assert sleeps.waits == [1.0, 2.0]


def test_server_errors_are_retried_a_bounded_number_of_times(
    notifier: SlackNotifier, sink: SlackSink, sleeps: Sleeps
) -> None:
    sink.fail_next(500, "rollup_error", times=10)
    with pytest.raises(base.NotificationError, match="500 rollup_error"):
        notifier.send(event())
    assert len(sink.received) == 4  # one try and three retries
    assert len(sleeps.waits) == 3


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, "channel_not_found"), (403, "action_prohibited"), (410, "channel_is_archived")],
)
def test_other_client_errors_fail_at_once_with_slacks_error_string_and_never_the_url(
    notifier: SlackNotifier, sink: SlackSink, sleeps: Sleeps, status: int, error: str
) -> None:
    sink.fail_next(status, error)
    with pytest.raises(base.NotificationError) as caught:
        notifier.send(event())
    assert str(caught.value) == f"slack: {status} {error}"
    assert "s3cr3t" not in str(caught.value) and "127.0.0.1" not in str(caught.value)
    assert len(sink.received) == 1 and sleeps.waits == []


def test_the_sink_refuses_a_body_that_is_not_json_as_slack_does(sink: SlackSink) -> None:
    response = requests.post(sink.url, data=b"not json", timeout=2)
    assert (response.status_code, response.text) == (400, "invalid_payload")
    response = requests.post(sink.url, json={"channel": "x"}, timeout=2)
    assert (response.status_code, response.text) == (400, "invalid_payload")
    response = requests.post(sink.url, json={"text": "hi"}, timeout=2)
    assert (response.status_code, response.text) == (200, "ok")


def test_a_200_that_is_not_ok_is_a_failure(notifier: SlackNotifier, sink: SlackSink) -> None:
    sink.fail_next(200, "no_text")
    with pytest.raises(base.NotificationError, match="200 no_text"):
        notifier.send(event())


def test_an_unreachable_slack_fails_after_retries_without_the_url(sleeps: Sleeps) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T1/B1/s3cr3t"
    slack = SlackNotifier(url, retries=2, sleep=sleeps, timeout=0.5)
    with pytest.raises(base.NotificationError) as caught:
        slack.send(event())
    slack.close()
    assert "cannot reach Slack" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert len(sleeps.waits) == 2


def test_a_rotated_webhook_file_is_read_at_each_send(
    sink: SlackSink, sleeps: Sleeps, tmp_path: Any
) -> None:
    path = tmp_path / "slack"
    path.write_text(sink.base_url + "/services/OLD/OLD/old\n")
    secret = Secret("SLACK_WEBHOOK", path=str(path))
    slack = SlackNotifier(secret, sleep=sleeps)
    slack.send(event())
    import os

    path.write_text(sink.url + "\n")
    os.utime(path, (1, 1))  # a different mtime, whatever the clock resolution
    slack.send(event())
    slack.close()
    assert [r.path for r in sink.received] == ["/services/OLD/OLD/old", SlackSink.webhook_path]


def test_an_empty_webhook_is_a_failure_not_a_crash(sleeps: Sleeps) -> None:
    slack = SlackNotifier(lambda: None, sleep=sleeps)
    with pytest.raises(base.NotificationError, match="SLACK_WEBHOOK is empty"):
        slack.send(event())
    slack.close()


def test_an_unverified_completion_says_not_verified(
    notifier: SlackNotifier, sink: SlackSink
) -> None:
    notifier.send(event(base.COMPLETED, details={"errors_fell": base.ERRORS_UNKNOWN}))
    (message,) = sink.messages
    assert "not verified" in message["text"]
    assert "not verified" in message["blocks"][0]["text"]["text"]
    assert "Check the service by hand" in all_text(message)


def test_a_verified_completion_does_not_say_not_verified(
    notifier: SlackNotifier, sink: SlackSink
) -> None:
    notifier.send(event(base.COMPLETED, details={"errors_fell": True}))
    (message,) = sink.messages
    assert "not verified" not in all_text(message)
