"""PagerDuty notifier against a loopback sink that answers like the Events API v2."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from receiver.tell import base
from receiver.tell.pagerduty import PagerDutyNotifier
from tests.fakes_notify import PagerDutySink
from tests.procs import free_port

KEY = "R0UT1NGK3Y0123456789abcdefABCDEF"  # 32 characters, like an integration key


@pytest.fixture
def sink() -> Iterator[PagerDutySink]:
    with PagerDutySink() as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def notifier(sink: PagerDutySink, sleeps: list[float]) -> Iterator[PagerDutyNotifier]:
    pd = PagerDutyNotifier(KEY, url=sink.url, retries=3, sleep=sleeps.append, timeout=2.0)
    yield pd
    pd.close()


def event(kind: str = base.STARTED, **overrides: Any) -> base.Event:
    fields: dict[str, Any] = dict(
        kind=kind,
        service="checkout",
        namespace="production",
        tier="critical",
        reason="passed",
        rollback_id="rb-1",
        episode="fp1:2026-11-26T10:00:00Z:critical",
        consumed=0.9,
        from_revision="bad123",
        to_revision="good456",
        links={"argocd": "https://argocd.example.com/applications/checkout"},
    )
    fields.update(overrides)
    return base.Event(**fields)


def send_if_wanted(notifier: PagerDutyNotifier, ev: base.Event) -> bool:
    if notifier.wants(ev):
        notifier.send(ev)
        return True
    return False


@pytest.mark.parametrize(("tier", "severity"), [("critical", "warning"), ("emergency", "critical")])
def test_an_automatic_rollback_start_triggers_keyed_by_rollback_id(
    notifier: PagerDutyNotifier, sink: PagerDutySink, tier: str, severity: str
) -> None:
    notifier.send(event(base.STARTED, tier=tier))
    (sent,) = sink.events
    assert sent["event_action"] == "trigger"
    assert sent["dedup_key"] == "rb-1"
    assert sent["routing_key"] == KEY
    assert sent["payload"]["severity"] == severity
    assert "Rolling back checkout" in sent["payload"]["summary"]
    assert sent["payload"]["custom_details"]["to_revision"] == "good456"
    assert sent["links"] == [
        {"href": "https://argocd.example.com/applications/checkout", "text": "Argo CD app"}
    ]
    assert PagerDutySink.validate(sent) == []


def test_completion_resolves_the_same_key(notifier: PagerDutyNotifier, sink: PagerDutySink) -> None:
    notifier.send(event(base.STARTED))
    notifier.send(event(base.COMPLETED))
    assert [(e["event_action"], e["dedup_key"]) for e in sink.events] == [
        ("trigger", "rb-1"),
        ("resolve", "rb-1"),
    ]
    assert set(sink.events[1]) == {"routing_key", "event_action", "dedup_key"}


@pytest.mark.parametrize("kind", [base.FAILED, base.NOT_EFFECTIVE, base.INTERRUPTED])
def test_a_failed_or_ineffective_rollback_pages_again_at_critical_with_the_same_key(
    notifier: PagerDutyNotifier, sink: PagerDutySink, kind: str
) -> None:
    notifier.send(event(base.STARTED))
    notifier.send(event(kind, error="validation timed out", stage="validation"))
    second = sink.events[1]
    assert (second["event_action"], second["dedup_key"]) == ("trigger", "rb-1")
    assert second["payload"]["severity"] == "critical"
    assert second["payload"]["custom_details"]["error"] == "validation timed out"


@pytest.mark.parametrize(
    ("kind", "tier", "reason", "severity"),
    [
        (base.ESCALATION, "critical", "already_rolled_back", "error"),
        (base.ESCALATION, "emergency", "no_recent_change", "critical"),
        (base.ESCALATION, "critical", "global_limit", "error"),
        (base.BLOCKED_EMERGENCY, "emergency", "cooldown", "critical"),
    ],
)
def test_escalations_and_blocked_emergencies_trigger_keyed_by_service_and_episode(
    notifier: PagerDutyNotifier,
    sink: PagerDutySink,
    kind: str,
    tier: str,
    reason: str,
    severity: str,
) -> None:
    notifier.send(event(kind, tier=tier, reason=reason, rollback_id=None))
    (sent,) = sink.events
    assert sent["event_action"] == "trigger"
    assert sent["dedup_key"] == "checkout:fp1:2026-11-26T10:00:00Z:critical"
    assert sent["payload"]["severity"] == severity
    assert reason in sent["payload"]["summary"]


def test_a_very_long_episode_key_is_shortened_within_pagerdutys_limit(
    notifier: PagerDutyNotifier, sink: PagerDutySink
) -> None:
    notifier.send(event(base.ESCALATION, episode="x" * 400))
    assert len(sink.events[0]["dedup_key"]) <= 255
    assert sink.events[0]["dedup_key"].startswith("checkout:")


def test_manual_rollbacks_page_only_when_they_go_wrong(
    notifier: PagerDutyNotifier, sink: PagerDutySink
) -> None:
    sent = [
        send_if_wanted(notifier, event(kind, automatic=False, tier="manual"))
        for kind in (base.STARTED, base.COMPLETED, base.FAILED)
    ]
    assert sent == [False, False, True]
    assert [e["event_action"] for e in sink.events] == ["trigger"]


@pytest.mark.parametrize(
    "kind", [base.PENDING_APPROVAL, base.APPROVAL_EXPIRED, base.REJECTED, base.APPROVED]
)
def test_approval_events_do_not_page(notifier: PagerDutyNotifier, kind: str) -> None:
    assert not notifier.wants(event(kind))


def test_rate_limits_are_retried_with_backoff(
    notifier: PagerDutyNotifier, sink: PagerDutySink, sleeps: list[float]
) -> None:
    sink.rate_limit_next(times=2)
    notifier.send(event())
    assert sleeps == [2.0, 4.0]
    assert len(sink.received) == 3 and sink.events[-1]["dedup_key"] == "rb-1"


def test_a_retry_after_header_is_honoured_and_capped(
    sink: PagerDutySink, sleeps: list[float]
) -> None:
    pd = PagerDutyNotifier(KEY, url=sink.url, retries=2, sleep=sleeps.append, max_wait=20)
    sink.fail_next(429, "{}", headers={"Retry-After": "5"})
    sink.fail_next(429, "{}", headers={"Retry-After": "500"})
    pd.send(event())
    pd.close()
    assert sleeps == [5.0, 20.0]


def test_server_errors_give_up_after_the_bounded_retries(
    notifier: PagerDutyNotifier, sink: PagerDutySink, sleeps: list[float]
) -> None:
    sink.fail_next(503, '{"status":"unavailable"}', times=10)
    with pytest.raises(base.NotificationError, match="pagerduty: 503"):
        notifier.send(event())
    assert len(sink.received) == 4 and len(sleeps) == 3


def test_a_bad_request_fails_at_once_with_pagerdutys_errors_and_no_key(
    sink: PagerDutySink, sleeps: list[float]
) -> None:
    pd = PagerDutyNotifier("short-key", url=sink.url, sleep=sleeps.append)
    with pytest.raises(base.NotificationError) as caught:
        pd.send(event())
    pd.close()
    message = str(caught.value)
    assert message.startswith("pagerduty: 400 Event object is invalid: ")
    assert "Length of 'routing_key' is incorrect (should be 32 characters)" in message
    assert "short-key" not in message
    assert sleeps == [] and len(sink.received) == 1


def test_an_unreachable_pagerduty_fails_without_the_key(sleeps: list[float]) -> None:
    pd = PagerDutyNotifier(
        KEY,
        url=f"http://127.0.0.1:{free_port()}/v2/enqueue",
        retries=1,
        sleep=sleeps.append,
        timeout=0.5,
    )
    with pytest.raises(base.NotificationError) as caught:
        pd.send(event())
    pd.close()
    assert "cannot reach PagerDuty" in str(caught.value) and KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "x", "severity": "info"},
            },
            "'routing_key' is missing or blank",
        ),
        ({"routing_key": KEY, "payload": {}}, "'event_action' is missing or blank"),
        ({"routing_key": KEY, "event_action": "trigger"}, "'payload' is missing or blank"),
        (
            {
                "routing_key": KEY,
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "x", "severity": "fatal"},
            },
            "'payload.severity' is invalid",
        ),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is missing or blank"),
    ],
)
def test_the_sink_refuses_incomplete_events_like_pagerduty(
    sink: PagerDutySink, body: dict[str, Any], error: str
) -> None:
    response = requests.post(sink.url, json=body, timeout=2)
    assert response.status_code == 400
    answer = response.json()
    assert answer["message"] == "Event object is invalid"
    assert any(error in e for e in answer["errors"])


def test_the_sink_answers_202_and_echoes_or_makes_a_dedup_key(sink: PagerDutySink) -> None:
    body = {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "x", "severity": "info"},
    }
    first = requests.post(sink.url, json={**body, "dedup_key": "k1"}, timeout=2)
    assert first.status_code == 202
    assert first.json() == {"status": "success", "message": "Event processed", "dedup_key": "k1"}
    second = requests.post(sink.url, json=body, timeout=2).json()
    assert second["dedup_key"] and second["dedup_key"] != "k1"
    garbage = requests.post(sink.url, data=b"{", timeout=2)
    assert garbage.status_code == 400 and garbage.json()["errors"] == ["JSON parse error"]


def test_an_unverified_completion_leaves_the_incident_open_for_a_human(
    notifier: PagerDutyNotifier, sink: PagerDutySink
) -> None:
    """No post-rollback sample (`errors_fell: unknown`): no resolve, a warning on the same key."""
    notifier.send(event(base.STARTED))
    unverified = event(base.COMPLETED, details={"errors_fell": base.ERRORS_UNKNOWN})
    assert notifier.wants(unverified)
    notifier.send(unverified)
    assert [(e["event_action"], e["dedup_key"]) for e in sink.events] == [
        ("trigger", "rb-1"),
        ("trigger", "rb-1"),
    ]
    update = sink.events[1]
    assert update["payload"]["severity"] == "warning"  # critical tier: the start's severity
    assert "not verified" in update["payload"]["summary"]
    assert update["payload"]["custom_details"]["errors_fell"] == "unknown"
    assert PagerDutySink.validate(update) == []


def test_a_verified_completion_still_resolves(
    notifier: PagerDutyNotifier, sink: PagerDutySink
) -> None:
    notifier.send(event(base.COMPLETED, details={"errors_fell": True}))
    assert [e["event_action"] for e in sink.events] == ["resolve"]


def test_an_unverified_emergency_completion_keeps_the_critical_severity(
    notifier: PagerDutyNotifier, sink: PagerDutySink
) -> None:
    details = {"errors_fell": base.ERRORS_UNKNOWN}
    notifier.send(event(base.COMPLETED, tier="emergency", details=details))
    (sent,) = sink.events
    assert (sent["event_action"], sent["payload"]["severity"]) == ("trigger", "critical")
