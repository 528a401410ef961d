"""The silences client against the real Alertmanager 0.25 binary, and its matcher semantics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from receiver.clients.alertmanager import (
    AlertmanagerClient,
    AlertmanagerError,
    AlertmanagerUnavailable,
    Matcher,
    Silence,
    SilenceNotFound,
    blackout_matchers,
    parse_time,
)
from tests.procs import Alertmanager, free_port


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    with Alertmanager() as running:
        yield running


@pytest.fixture
def client(alertmanager: Alertmanager) -> Iterator[AlertmanagerClient]:
    with AlertmanagerClient(alertmanager.url) as am:
        yield am


def unique_service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def trigger_labels(service: str, tier: str = "critical") -> dict[str, str]:
    return {
        "alertname": "TriggerCriticalRollback",
        "service": service,
        "namespace": "production",
        "rollback_tier": tier,
        "severity": "critical",
    }


# -- matcher semantics (no Alertmanager needed) --------------------------------------------


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        (Matcher("service", "checkout"), {"service": "checkout"}, True),
        (Matcher("service", "checkout"), {"service": "checkout-v2"}, False),
        (Matcher("service", "checkout", is_equal=False), {"service": "cart"}, True),
        (Matcher("service", "checkout", is_equal=False), {"service": "checkout"}, False),
        (
            Matcher("rollback_tier", "critical|emergency", is_regex=True),
            {"rollback_tier": "emergency"},
            True,
        ),
        (
            Matcher("rollback_tier", "critical|emergency", is_regex=True),
            {"rollback_tier": "critical-ish"},
            False,
        ),
        (Matcher("service", "check", is_regex=True), {"service": "checkout"}, False),
        (Matcher("service", "check.*", is_regex=True), {"service": "checkout"}, True),
        (Matcher("service", "a|b", is_regex=True, is_equal=False), {"service": "c"}, True),
        (Matcher("team", "", is_regex=False), {"service": "x"}, True),
        (Matcher("team", ".+", is_regex=True), {"service": "x"}, False),
        (Matcher("service", "(", is_regex=True), {"service": "("}, False),
    ],
)
def test_matchers_follow_alertmanager_semantics(
    matcher: Matcher, labels: dict[str, str], expected: bool
) -> None:
    """Regexes are anchored, a missing label is empty, isEqual false negates."""
    assert matcher.matches(labels) is expected


def _silence(*matchers: Matcher) -> Silence:
    now = datetime.now(UTC)
    return Silence("id", "active", matchers, now, now + timedelta(hours=1), "me", "why")


def test_a_freeze_silence_is_scoped_by_its_other_matchers_only() -> None:
    """The rollback_freeze="true" matcher is ignored when matching; the others scope it."""
    freeze = _silence(Matcher("rollback_freeze", "true"), Matcher("service", "checkout"))
    assert freeze.is_freeze
    assert freeze.matches(trigger_labels("checkout"))
    assert not freeze.matches(trigger_labels("cart"))


def test_a_freeze_silence_without_other_matchers_freezes_everything() -> None:
    assert _silence(Matcher("rollback_freeze", "true")).matches(trigger_labels("anything"))


def test_a_plain_silence_on_the_freeze_label_needs_the_label_on_the_alert() -> None:
    """Only `rollback_freeze="true"` exactly is a freeze marker; a regex one is a matcher."""
    silence = _silence(Matcher("rollback_freeze", "true", is_regex=True))
    assert not silence.is_freeze
    assert not silence.matches(trigger_labels("checkout"))


def test_matchers_print_like_alertmanager() -> None:
    assert [str(m) for m in blackout_matchers("checkout")] == [
        'rollback_tier=~"critical|emergency"',
        'service="checkout"',
    ]
    assert str(Matcher("a", 'x"y', is_equal=False)) == 'a!="x\\"y"'


def test_times_with_nanoseconds_and_zulu_parse_as_utc() -> None:
    parsed = parse_time("2026-08-22T10:00:00.123456789Z")
    assert parsed == datetime(2026, 8, 22, 10, 0, 0, 123456, tzinfo=UTC)


# -- against the real Alertmanager ---------------------------------------------------------


def test_a_created_silence_is_listed_as_active_with_who_why_and_until(
    client: AlertmanagerClient,
) -> None:
    service = unique_service()
    before = datetime.now(UTC)
    silence_id = client.create_silence(
        blackout_matchers(service),
        duration=timedelta(hours=2),
        created_by="alice",
        comment="release freeze",
    )
    listed = {s.id: s for s in client.list_silences()}
    assert silence_id in listed
    silence = listed[silence_id]
    assert silence.state == "active"
    assert (silence.created_by, silence.comment) == ("alice", "release freeze")
    assert silence.matchers == tuple(blackout_matchers(service))
    expected_end = before + timedelta(hours=2)
    assert abs((silence.ends_at - expected_end).total_seconds()) < 5


def test_an_ended_silence_is_expired_and_no_longer_listed_as_active(
    client: AlertmanagerClient,
) -> None:
    service = unique_service()
    silence_id = client.create_silence(
        blackout_matchers(service),
        duration=timedelta(minutes=30),
        created_by="bob",
        comment="test",
    )
    client.expire_silence(silence_id)
    assert silence_id not in {s.id for s in client.list_silences()}
    assert client.get_silence(silence_id).state == "expired"
    assert silence_id in {s.id for s in client.list_silences(("expired",))}
    client.expire_silence(silence_id)  # ending an ended one again is fine, as in Alertmanager


def test_ending_an_unknown_silence_says_not_found(client: AlertmanagerClient) -> None:
    with pytest.raises(SilenceNotFound, match="silence not found"):
        client.expire_silence(str(uuid.uuid4()))


def test_ending_a_malformed_id_is_refused_without_asking(client: AlertmanagerClient) -> None:
    with pytest.raises(AlertmanagerError, match="not a silence id"):
        client.expire_silence("../../etc")


def test_a_pending_silence_does_not_silence_yet(client: AlertmanagerClient) -> None:
    service = unique_service()
    start = datetime.now(UTC) + timedelta(hours=1)
    silence_id = client.create_silence(
        blackout_matchers(service),
        starts_at=start,
        duration=timedelta(hours=1),
        created_by="carol",
        comment="later",
    )
    assert client.get_silence(silence_id).state == "pending"
    assert client.matching_silences(trigger_labels(service)) == []
    client.expire_silence(silence_id)


def test_an_alert_is_silenced_by_a_blackout_for_its_service_only(
    client: AlertmanagerClient,
) -> None:
    service, other = unique_service(), unique_service()
    silence_id = client.create_silence(
        blackout_matchers(service),
        duration=timedelta(minutes=10),
        created_by="dave",
        comment="freeze",
    )
    try:
        assert [s.id for s in client.matching_silences(trigger_labels(service))] == [silence_id]
        assert [s.id for s in client.matching_silences(trigger_labels(service, "emergency"))] == [
            silence_id
        ]
        assert client.matching_silences(trigger_labels(other)) == []
        assert client.matching_silences({"service": service, "rollback_tier": "warning"}) == []
    finally:
        client.expire_silence(silence_id)
    assert client.matching_silences(trigger_labels(service)) == []


def test_a_freeze_silence_in_alertmanager_matches_alerts_without_the_freeze_label(
    client: AlertmanagerClient,
) -> None:
    service = unique_service()
    silence_id = client.create_silence(
        [Matcher("rollback_freeze", "true"), Matcher("service", service)],
        duration=timedelta(minutes=10),
        created_by="erin",
        comment="freeze via amtool",
    )
    try:
        found = client.matching_silences(trigger_labels(service))
        assert [s.id for s in found] == [silence_id]
        assert found[0].is_freeze
    finally:
        client.expire_silence(silence_id)


def test_alertmanager_refusals_carry_its_own_error_string(client: AlertmanagerClient) -> None:
    with pytest.raises(AlertmanagerError, match="end time can't be in the past"):
        client.create_silence(
            blackout_matchers("x"),
            ends_at=datetime.now(UTC) - timedelta(hours=1),
            starts_at=datetime.now(UTC) - timedelta(hours=2),
            created_by="x",
            comment="x",
        )
    with pytest.raises(AlertmanagerError, match="must not match the empty string"):
        client.create_silence(
            [Matcher("team", "")], duration=timedelta(hours=1), created_by="x", comment="x"
        )


def test_an_unreachable_alertmanager_is_reported_without_credentials() -> None:
    url = f"http://user:hunter2@127.0.0.1:{free_port()}"
    with AlertmanagerClient(url, timeout=0.5) as am:
        with pytest.raises(AlertmanagerUnavailable) as caught:
            am.matching_silences(trigger_labels("checkout"))
    message = str(caught.value)
    assert "cannot reach Alertmanager" in message
    assert "hunter2" not in message and "user" not in message
