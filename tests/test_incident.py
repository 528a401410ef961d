"""Incident tickets (GitHub issues) and the incident webhook, against the fake GitHub.

GitHub facts the fake follows (docs.github.com REST "Issues": create 201, list with
state/labels/sort/direction/per_page, update PATCH, comments POST 201, labels POST; 404 for a
missing repository, 410 "Issues are disabled for this repo", 422 "Validation Failed" with
`errors`); PyGithub 2.x sends `Authorization: token T`, `get_issue` is lazy (no GET), and
`add_to_labels` POSTs a JSON list.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from receiver import metrics
from receiver.config import Settings
from receiver.tell import base
from receiver.tell.incident import IncidentNotifier
from receiver.tell.incident_text import FAILED_LABEL, incident_key, marker
from receiver.tell.incident_webhook import IncidentWebhookNotifier
from receiver.tell.notify import Notifications, build_notifiers
from tests.conftest import REAL_REDIS_URL
from tests.fakes import BareRepo
from tests.fakes.github_api import FakeGitHub
from tests.fakes_notify import _Sink

TOKEN = "ghp_incidentToken0123456789abcdef"
REPO = "acme/incidents"


class Fixed:
    def __init__(self, value: str | None) -> None:
        self.value = value

    def get(self) -> str | None:
        return self.value


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(BareRepo.create(tmp_path / "incidents.git"), REPO, TOKEN)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def claim() -> Iterator[Callable[[str, int], bool]]:
    """The store's claim (SET NX EX) on the machine's real Redis, under a private prefix."""
    client = redis_lib.Redis.from_url(REAL_REDIS_URL, decode_responses=True)
    prefix = f"incident-test-{secrets.token_hex(3)}:"

    def claim_once(name: str, ttl: int) -> bool:
        return bool(client.set(prefix + name, "1", nx=True, ex=ttl))

    try:
        yield claim_once
    finally:
        for key in client.scan_iter(f"{prefix}*", count=500):
            client.delete(key)
        client.close()


def make_notifier(
    github: FakeGitHub, claim: Callable[[str, int], bool] | None, **kwargs: Any
) -> IncidentNotifier:
    sleeps: list[float] = []
    notifier = IncidentNotifier(
        kwargs.pop("repo", REPO),
        Fixed(kwargs.pop("token", TOKEN)),
        api_url=github.base_url,
        public_url="https://rollback.example",
        claim=claim,
        sleep=sleeps.append,
        write_pause=0,
        **kwargs,
    )
    notifier.sleeps = sleeps  # type: ignore[attr-defined]
    return notifier


def event(kind: str = base.STARTED, **fields: Any) -> base.Event:
    values: dict[str, Any] = {
        "kind": kind,
        "service": "checkout",
        "namespace": "production",
        "tier": "emergency",
        "reason": "passed",
        "rollback_id": "rb-0001",
        "episode": "c2a4d8e1f0b3a597:2026-12-01T10:00:00Z:emergency",
        "consumed": 0.97,
        "from_revision": "bad1234",
        "to_revision": "good567",
        "links": {"commit": "https://github.example/acme/gitops/commit/abc"},
        "details": {
            "trigger": {"alertname": "TriggerEmergencyRollback", "fingerprint": "c2a4d8e1f0b3a597"},
            "checks": [{"name": "cooldown", "ok": True}, {"name": "locked", "ok": True}],
        },
    }
    values.update(fields)
    return base.Event(**values)


# -- opening -------------------------------------------------------------------------------


def test_a_started_automatic_rollback_opens_one_issue_as_the_contract_describes(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """Title, labels `rollback`, `service:<service>`; body: trigger, checks, target, links."""
    make_notifier(github, claim).send(event())
    [issue] = github.issues
    assert issue["title"] == "Rollback of checkout: emergency error budget burn (rb-0001)"
    assert issue["labels"] == ["rollback", "service:checkout"]
    assert issue["state"] == "open"
    body = issue["body"]
    assert body.startswith(marker("rollback:rb-0001"))
    for part in ("### Trigger", "TriggerEmergencyRollback", "### Checks", "cooldown: pass"):
        assert part in body
    assert "from `bad1234` to `good567`" in body
    assert "https://rollback.example/ui/rollbacks/rb-0001" in body
    assert TOKEN not in body


def test_a_manual_rollback_opens_no_issue(github: FakeGitHub) -> None:
    """Only automatic rollbacks (and escalations) are incidents."""
    notifier = make_notifier(github, None)
    assert not notifier.wants(event(automatic=False))
    assert not notifier.wants(event(kind=base.PENDING_APPROVAL))
    assert notifier.wants(event(kind=base.ESCALATION, reason="already_rolled_back"))


def test_two_replicas_starting_the_same_rollback_open_one_issue(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """The Redis claim lets one replica create; the others open nothing."""
    # Every look for the marker is slow and all four start together: without the claim,
    # each would find nothing and create (four issues).
    github.faults.slow("GET", r"/issues$", 0.3, times=4)
    start = threading.Barrier(4, timeout=5)
    replicas = [make_notifier(github, claim) for _ in range(4)]

    def replica_sends(notifier: IncidentNotifier) -> None:
        start.wait()
        notifier.send(event())

    threads = [threading.Thread(target=replica_sends, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(github.issues) == 1
    assert github.faults.count("POST", r"/issues$") == 1


def test_a_create_whose_answer_was_lost_is_found_by_its_marker_not_created_again(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """GitHub created the issue but answered 502: the retry finds the marker and stops."""
    github.faults.fail("POST", r"/issues$", 502, {"message": "Server Error"}, after=True)
    notifier = make_notifier(github, claim)
    notifier.send(event())
    assert len(github.issues) == 1
    assert github.faults.count("POST", r"/issues$") == 1
    assert len(notifier.sleeps) == 1  # type: ignore[attr-defined]


def test_a_restarted_replica_finds_the_issue_by_its_marker(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """After a crash the claim has expired; the marker search still prevents a second issue."""
    make_notifier(github, None).send(event())
    make_notifier(github, None).send(event())
    assert len(github.issues) == 1


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (502, {"message": "Server Error"}, {}),
        (
            403,
            {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
            {"Retry-After": "2"},
        ),
    ],
    ids=["5xx", "secondary-rate-limit"],
)
def test_5xx_and_secondary_rate_limits_are_retried(
    github: FakeGitHub,
    claim: Callable[[str, int], bool],
    status: int,
    body: dict[str, str],
    headers: dict[str, str],
) -> None:
    """A transient refusal is retried (honouring Retry-After) and the issue is opened."""
    github.faults.fail("POST", r"/issues$", status, body, headers)
    notifier = make_notifier(github, claim)
    notifier.send(event())
    assert len(github.issues) == 1
    expected = 2.0 if "Retry-After" in headers else 1.0
    assert notifier.sleeps == [expected]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("issues_enabled", "repo", "words"),
    [
        (False, REPO, "410 Issues are disabled for this repo"),
        (True, "acme/missing", "404 Not Found"),
    ],
    ids=["issues-disabled-410", "missing-repo-404"],
)
def test_a_refusal_is_a_clear_notification_error_without_the_token(
    github: FakeGitHub, issues_enabled: bool, repo: str, words: str
) -> None:
    """410 (issues disabled) and 404 (no such repository) fail at once, naming the cause."""
    github.issues_enabled = issues_enabled
    notifier = make_notifier(github, None, repo=repo)
    with pytest.raises(base.NotificationError) as raised:
        notifier.send(event())
    assert words in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert notifier.sleeps == []  # type: ignore[attr-defined]
    assert github.issues == []


def test_a_rollback_claimed_by_another_replica_is_left_to_it(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """When the Redis claim is already held, this replica creates nothing."""
    assert claim(f"incident:{incident_key(event())}", 60)
    make_notifier(github, claim).send(event())
    assert github.issues == []
    assert github.faults.count("POST", r"/issues$") == 0


def test_a_low_rate_limit_leaves_the_budget_to_the_rollbacks(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """Below the reserve of remaining requests, no issue is created (counted as a failure)."""
    github.rate_remaining = 50
    with pytest.raises(base.NotificationError, match="rate limit low"):
        make_notifier(github, claim).send(event())
    assert github.issues == []


# -- outcomes ------------------------------------------------------------------------------


def test_a_completed_effective_rollback_comments_and_closes_the_issue(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """Another replica (no cache) finds the issue by marker, comments, closes it."""
    make_notifier(github, claim).send(event())
    make_notifier(github, claim).send(event(base.COMPLETED))
    [issue] = github.issues
    assert issue["state"] == "closed"
    assert len(issue["comment_list"]) == 1
    assert "completed" in issue["comment_list"][0]
    assert FAILED_LABEL not in issue["labels"]


@pytest.mark.parametrize("kind", [base.FAILED, base.NOT_EFFECTIVE, base.INTERRUPTED])
def test_other_outcomes_comment_and_leave_the_issue_open_labelled_rollback_failed(
    github: FakeGitHub, claim: Callable[[str, int], bool], kind: str
) -> None:
    """failed, not effective, interrupted: one comment, open, `rollback-failed`."""
    notifier = make_notifier(github, claim)
    notifier.send(event())
    notifier.send(event(kind, error="argocd sync failed", stage="argocd"))
    [issue] = github.issues
    assert issue["state"] == "open"
    assert issue["labels"] == ["rollback", "service:checkout", FAILED_LABEL]
    [comment] = issue["comment_list"]
    assert kind in comment and "argocd sync failed" in comment


def test_a_not_effective_completion_reopens_nothing_it_closed(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """COMPLETED marked not_effective keeps the issue open and labelled."""
    notifier = make_notifier(github, claim)
    notifier.send(event())
    notifier.send(event(base.COMPLETED, details={"not_effective": True}))
    [issue] = github.issues
    assert issue["state"] == "open" and FAILED_LABEL in issue["labels"]


def test_an_outcome_whose_start_was_never_ticketed_opens_the_issue_then(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """GitHub was down at the start: the outcome opens the issue and comments on it."""
    make_notifier(github, claim).send(event(base.FAILED, error="gitops push refused"))
    [issue] = github.issues
    assert issue["title"].endswith("(rb-0001)")
    assert len(issue["comment_list"]) == 1 and FAILED_LABEL in issue["labels"]


# -- escalations ---------------------------------------------------------------------------


def test_an_escalation_is_one_issue_per_fingerprint_whatever_the_startsat(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """A repeat of the same alert (new startsAt, another replica) opens no second issue."""
    first = event(base.ESCALATION, reason="already_rolled_back", rollback_id="rb-esc-1")
    again = event(
        base.ESCALATION,
        reason="already_rolled_back",
        rollback_id="rb-esc-2",
        episode="c2a4d8e1f0b3a597:2026-12-01T11:00:00Z:emergency",
    )
    assert incident_key(first) == incident_key(again)
    make_notifier(github, claim).send(first)
    make_notifier(github, claim).send(again)
    [issue] = github.issues
    assert issue["title"] == "Rollback of checkout: emergency error budget burn (rb-esc-1)"


def test_a_burst_of_global_limit_escalations_is_one_issue_naming_every_service(
    github: FakeGitHub, claim: Callable[[str, int], bool]
) -> None:
    """details["services"] makes one issue labelled for each service."""
    burst = event(
        base.ESCALATION,
        reason="global_limit",
        rollback_id=None,
        details={"services": ["search", "checkout", "cart"], "burst_id": "d-42"},
    )
    make_notifier(github, claim).send(burst)
    make_notifier(github, claim).send(burst)
    [issue] = github.issues
    assert issue["title"] == "Rollback of 3 services: emergency error budget burn (global_limit)"
    assert issue["labels"] == ["rollback", "service:cart", "service:checkout", "service:search"]
    assert "`cart`, `checkout`, `search`" in issue["body"]


# -- through Notifications -----------------------------------------------------------------


def test_a_failing_incident_is_counted_and_never_reaches_the_caller(github: FakeGitHub) -> None:
    """Notifications.notify returns at once; the failure lands in channel="incident"."""
    github.issues_enabled = False
    before = metrics.NOTIFY_FAILURES.labels("incident")._value.get()
    notifications = Notifications([make_notifier(github, None)])
    try:
        notifications.notify(event())
        assert notifications.flush(10)
    finally:
        notifications.close(5)
    assert metrics.NOTIFY_FAILURES.labels("incident")._value.get() == before + 1


def test_build_notifiers_adds_incidents_with_the_gitops_token_as_fallback(
    github: FakeGitHub,
) -> None:
    """INCIDENT_REPO without INCIDENT_TOKEN uses GITOPS_TOKEN; INCIDENT_WEBHOOK adds a channel."""
    settings = Settings.from_env(
        {
            "INCIDENT_REPO": REPO,
            "GITOPS_TOKEN": TOKEN,
            "GITHUB_API_URL": github.base_url,
            "INCIDENT_WEBHOOK": "http://127.0.0.1:9/hook",
            "BLACKOUT_WINDOWS": "none",
        }
    )
    notifiers = build_notifiers(settings)
    assert [type(n).__name__ for n in notifiers] == ["IncidentNotifier", "IncidentWebhookNotifier"]
    assert {n.channel for n in notifiers} == {"incident"}
    incident = notifiers[0]
    assert isinstance(incident, IncidentNotifier)
    incident.write_pause = 0
    incident.send(event())
    assert len(github.issues) == 1
    assert build_notifiers(Settings.from_env({"BLACKOUT_WINDOWS": "none"})) == []


def test_the_fake_answers_validation_errors_as_github_does(github: FakeGitHub) -> None:
    """422 Validation Failed with `errors` for an issue without a title."""
    answer = requests.post(
        f"{github.base_url}/repos/{REPO}/issues",
        json={"body": "no title"},
        headers={"Authorization": f"token {TOKEN}"},
        timeout=5,
    )
    assert answer.status_code == 422
    body = answer.json()
    assert body["message"] == "Validation Failed"
    assert body["errors"] == [{"resource": "Issue", "code": "missing_field", "field": "title"}]


# -- the incident webhook ------------------------------------------------------------------


class IncidentBridge(_Sink):
    """An incident bridge: 200 `{}` to every POST, scripted failures first."""

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        scripted = self._take_scripted()
        self._record(path, headers, body)
        if scripted is not None:
            return scripted.status, scripted.body, scripted.headers
        return 200, b"{}", {"Content-Type": "application/json"}


@pytest.fixture
def bridge() -> Iterator[IncidentBridge]:
    with IncidentBridge() as sink:
        yield sink


def webhook(bridge: IncidentBridge, token: str | None = "bridge-token") -> IncidentWebhookNotifier:
    sleeps: list[float] = []
    notifier = IncidentWebhookNotifier(
        Fixed(bridge.base_url + "/hooks/s3cr3t"), Fixed(token), sleep=sleeps.append
    )
    notifier.sleeps = sleeps  # type: ignore[attr-defined]
    return notifier


@pytest.mark.parametrize(
    ("kind", "type_", "state"),
    [
        (base.STARTED, "started", "running"),
        (base.COMPLETED, "completed", "completed"),
        (base.FAILED, "failed", "failed"),
        (base.NOT_EFFECTIVE, "not_effective", "completed"),
        (base.INTERRUPTED, "interrupted", "interrupted"),
        (base.ESCALATION, "escalated", "skipped"),
    ],
)
def test_the_webhook_posts_each_event_as_json_with_the_bearer_token(
    bridge: IncidentBridge, kind: str, type_: str, state: str
) -> None:
    """`{type, rollback_id, service, tier, state, record}` with `Authorization: Bearer`."""
    webhook(bridge).send(event(kind))
    [received] = bridge.received
    assert received.headers.get("Authorization") == "Bearer bridge-token"
    assert set(received.json) == {"type", "rollback_id", "service", "tier", "state", "record"}
    assert (received.json["type"], received.json["state"]) == (type_, state)
    assert received.json["rollback_id"] == "rb-0001"
    assert received.json["record"]["service"] == "checkout"


def test_the_webhook_sends_the_history_record_when_the_event_carries_it(
    bridge: IncidentBridge,
) -> None:
    """details["record"] is passed through as `record`; no token means no Authorization."""
    record = {"id": "rb-0001", "state": "completed", "stages": []}
    webhook(bridge, token=None).send(event(base.COMPLETED, details={"record": record}))
    [received] = bridge.received
    assert received.json["record"] == record
    assert "Authorization" not in received.headers


def test_the_webhook_retries_5xx_and_fails_on_4xx_without_naming_the_url(
    bridge: IncidentBridge,
) -> None:
    """503 then 200 is delivered after one retry; a 400 fails at once, URL not in the error."""
    bridge.fail_next(503, "busy")
    notifier = webhook(bridge)
    notifier.send(event())
    assert len(bridge.received) == 2 and notifier.sleeps == [1.0]  # type: ignore[attr-defined]
    bridge.fail_next(400, json.dumps({"error": "bad"}))
    with pytest.raises(base.NotificationError) as raised:
        notifier.send(event())
    assert "400" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)
