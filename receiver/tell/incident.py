"""Incident tickets: one GitHub issue per started automatic rollback and per escalation.

Lifecycle (CONTRACT "Notifications"): the issue is opened when an automatic rollback starts
(or a trigger escalates), titled `Rollback of <service>: <tier> error budget burn (<id>)`,
labelled `rollback` and `service:<service>`; each outcome adds a comment; a completed,
effective rollback closes it, any other outcome leaves it open labelled `rollback-failed`.
A burst's follow-up digest (`details["continues"]`) comments on the burst's first issue,
naming the services it adds (and labelling them), instead of opening another.

Exactly one issue per rollback id across replicas and retries: a Redis claim (SET NX, the
store's `claim_once`) before creating, and, before every create, a look through the newest
issues of the service for a hidden marker in the body (an earlier attempt may have created
the issue and lost the answer). GitHub calls are serialised per process and paced, and give
up while the token's rate limit is low: incidents are optional, a rollback's writes go first.
5xx, secondary rate limits and network errors are retried with tenacity (bounded).

`IncidentWebhookNotifier` POSTs the same events as JSON
`{type, rollback_id, service, tier, state, record}` to INCIDENT_WEBHOOK (Jira, ServiceNow,
Opsgenie bridges), with INCIDENT_WEBHOOK_TOKEN as a bearer token when set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from github import Auth, Github, GithubException

from receiver.tell import base
from receiver.tell.delivery import RetryableError, deliver, retry_after_seconds
from receiver.tell.incident_text import (
    CHANNEL,
    CLAIM_SECONDS,
    FAILED_LABEL,
    LABEL,
    OPENING,
    SEARCH_DEPTH,
    SECONDARY_LIMIT_PHRASES,
    SecretValue,
    added_services,
    burst_services,
    effective_completion,
    first_issue_service,
    follow_up_comment,
    incident_key,
    issue_body,
    issue_labels,
    issue_title,
    marker,
    outcome_comment,
    wanted,
)
from receiver.tell.wording import continued_burst


def _github_message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return str(exc.status)


def _github_failure(what: str, exc: GithubException) -> base.NotificationError:
    """A retryable error for 5xx and secondary limits, a plain failure otherwise; no token."""
    message = _github_message(exc)
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    text = f"GitHub {what}: {exc.status} {message}"
    limited = exc.status in (403, 429) and (
        "retry-after" in headers or any(p in message.lower() for p in SECONDARY_LIMIT_PHRASES)
    )
    if exc.status >= 500 or limited:
        return RetryableError(text, retry_after_seconds(headers.get("retry-after")))
    if exc.status == 410:
        return base.NotificationError(f"{text} (enable issues on INCIDENT_REPO)")
    return base.NotificationError(text)


class IncidentNotifier(base.Notifier):
    """GitHub issues in INCIDENT_REPO, one per rollback id or escalation, whatever the replicas."""

    channel = CHANNEL

    def __init__(
        self,
        repo: str,
        token: SecretValue,
        *,
        api_url: str = "https://api.github.com",
        public_url: str | None = None,
        claim: Callable[[str, int], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retries: int = 3,
        write_pause: float = 1.0,
        min_rate_remaining: int = 200,
        timeout: int = 10,
    ) -> None:
        self.repo_name = repo
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.public_url = public_url
        self.claim = claim
        self.sleep = sleep
        self.retries = retries
        self.write_pause = write_pause
        self.min_rate_remaining = min_rate_remaining
        self.timeout = timeout
        self._numbers: dict[str, int] = {}  # key -> issue number, found or created here
        self._github: Github | None = None
        # One request at a time (GitHub asks for serial requests per token); held for a
        # single call only, never across a retry's wait. One notifier per process.
        self._serial = threading.Lock()

    def wants(self, event: base.Event) -> bool:
        return wanted(event)

    # -- plumbing --------------------------------------------------------------------------

    def _client(self) -> Github:
        if self._github is None:
            token = self.token.get()
            self._github = Github(
                auth=Auth.Token(token) if token else None,
                base_url=self.api_url,
                timeout=self.timeout,
                retry=None,
                seconds_between_requests=None,
                seconds_between_writes=self.write_pause or None,
                per_page=SEARCH_DEPTH,
                lazy=True,
            )
        return self._github

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            with self._serial:
                return fn()
        except GithubException as exc:
            raise _github_failure(what, exc) from None
        except requests.RequestException as exc:
            raise RetryableError(
                f"GitHub {what}: cannot reach {self.api_url} ({exc.__class__.__name__})"
            ) from None

    def _check_budget(self) -> None:
        """Give up while the token's remaining rate limit is low: rollbacks need it more."""
        requester = getattr(self._client(), "requester", None)
        remaining = getattr(requester, "rate_limiting", (-1, -1))[0]
        if 0 <= remaining < self.min_rate_remaining:
            raise base.NotificationError(
                f"GitHub rate limit low ({remaining} requests left): incident skipped so "
                "the running rollbacks keep the budget"
            )

    def _repo(self) -> Any:
        return self._client().get_repo(self.repo_name)

    def _find(self, key: str, service: str) -> int | None:
        """The issue carrying the key's marker among the service's newest issues."""
        if key in self._numbers:
            return self._numbers[key]
        wanted_marker = marker(key)
        issues = self._call(
            "list issues",
            lambda: self._repo().get_issues(
                state="all", labels=[LABEL, f"service:{service}"], sort="created", direction="desc"
            ),
        )

        def scan() -> int | None:
            for index, issue in enumerate(issues):
                if index >= SEARCH_DEPTH:
                    return None
                if wanted_marker in (issue.body or ""):
                    return int(issue.number)
            return None

        number: int | None = self._call("list issues", scan)
        if number is not None:
            self._numbers[key] = number
        return number

    def _open(self, event: base.Event, key: str) -> int:
        """Find the issue of this key, or create it (each attempt looks before it creates)."""

        def attempt() -> int:
            found = self._find(key, burst_services(event)[0])
            if found is not None:
                return found
            self._check_budget()
            issue = self._call(
                "create issue",
                lambda: self._repo().create_issue(
                    title=issue_title(event),
                    body=issue_body(event, key, self.public_url),
                    labels=issue_labels(event),
                ),
            )
            self._numbers[key] = int(issue.number)
            return int(issue.number)

        number: int = deliver(attempt, retries=self.retries, sleep=self.sleep)
        return number

    def _claimed(self, key: str) -> bool:
        if self.claim is None:
            return True
        try:
            return bool(self.claim(f"incident:{key}", CLAIM_SECONDS))
        except Exception:
            # Store down: better one duplicate than no incident; the marker search still runs.
            return True

    # -- the lifecycle ---------------------------------------------------------------------

    def send(self, event: base.Event) -> None:
        key = incident_key(event)
        if continued_burst(event) is not None:
            self._add_to_burst(event, key)
        elif event.kind in OPENING:
            if self._claimed(key):
                self._open(event, key)
        else:
            self._record_outcome(event, key)

    def _found_or_opened(
        self, event: base.Event, key: str, service: str, what: str
    ) -> tuple[int, bool]:
        """The key's issue, and whether it existed (else it was opened now from this event).

        Opened only by the replica that gets the claim: a claim held elsewhere means another
        replica is opening it, so `what` is not commented (NotificationError)."""
        number = deliver(lambda: self._find(key, service), retries=self.retries, sleep=self.sleep)
        if number is not None:
            return number, True
        if not self._claimed(key):
            raise base.NotificationError(
                f"no incident issue yet for {what} (another replica is opening it); not commented"
            )
        return self._open(event, key), False

    def _add_to_burst(self, event: base.Event, key: str) -> None:
        """A burst's follow-up: a comment naming the added services on the first issue."""
        burst = f"burst {event.details.get('burst_id')}"
        number, existed = self._found_or_opened(event, key, first_issue_service(event), burst)
        if not existed:
            return  # opened now from the follow-up: its body names every service so far
        self._check_budget()
        issue = self._repo().get_issue(number)
        text = follow_up_comment(event)
        deliver(
            lambda: self._call("comment", lambda: issue.create_comment(text)),
            retries=self.retries,
            sleep=self.sleep,
        )
        labels = [f"service:{s}" for s in added_services(event)]
        deliver(
            lambda: self._call("label issue", lambda: issue.add_to_labels(*labels)),
            retries=self.retries,
            sleep=self.sleep,
        )

    def _record_outcome(self, event: base.Event, key: str) -> None:
        number, _ = self._found_or_opened(
            event, key, event.service, f"rollback {event.rollback_id}"
        )
        issue = self._repo().get_issue(number)
        deliver(
            lambda: self._call(
                "comment", lambda: issue.create_comment(outcome_comment(event, self.public_url))
            ),
            retries=self.retries,
            sleep=self.sleep,
        )
        close = effective_completion(event)

        def change() -> None:
            if close:
                issue.edit(state="closed", state_reason="completed")
            else:
                issue.edit(state="open")
                issue.add_to_labels(FAILED_LABEL)

        deliver(lambda: self._call("update issue", change), retries=self.retries, sleep=self.sleep)

    def close(self) -> None:
        if self._github is not None:
            self._github.close()
            self._github = None
