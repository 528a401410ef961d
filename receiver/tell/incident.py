"""Incident tickets: one GitHub issue per started automatic rollback and per escalation.

Lifecycle (CONTRACT "Notifications"): the issue is opened when an automatic rollback starts
(or a trigger escalates), titled `Rollback of <service>: <tier> error budget burn (<id>)`,
labelled `rollback` and `service:<service>`; each outcome adds a comment; a completed,
effective rollback closes it, any other outcome leaves it open labelled `rollback-failed`.

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

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import requests
from github import Auth, Github, GithubException

from receiver.tell import base, wording
from receiver.tell.delivery import RetryableError, deliver, retry_after_seconds

CHANNEL = "incident"
LABEL = "rollback"
FAILED_LABEL = "rollback-failed"
MARKER_PREFIX = "<!-- rollback-receiver:incident "
OPENING = (base.STARTED, base.ESCALATION, base.BLOCKED_EMERGENCY)
OUTCOMES = (base.COMPLETED, base.FAILED, base.NOT_EFFECTIVE, base.INTERRUPTED)
WEBHOOK_TYPES = {
    base.STARTED: "started",
    base.COMPLETED: "completed",
    base.FAILED: "failed",
    base.NOT_EFFECTIVE: "not_effective",
    base.INTERRUPTED: "interrupted",
    base.ESCALATION: "escalated",
    base.BLOCKED_EMERGENCY: "escalated",
}
STATES = {
    base.STARTED: "running",
    base.COMPLETED: "completed",
    base.FAILED: "failed",
    base.NOT_EFFECTIVE: "completed",
    base.INTERRUPTED: "interrupted",
    base.ESCALATION: "skipped",
    base.BLOCKED_EMERGENCY: "skipped",
}
CLAIM_SECONDS = 600  # long enough for one create with its retries, short enough to recover
SEARCH_DEPTH = 100  # newest issues of the service looked through for the marker
SECONDARY_LIMIT_PHRASES = (
    "secondary rate limit",
    "please retry your request again later",
    "please wait a few minutes before you try again",
)


class SecretValue(Protocol):
    def get(self) -> str | None: ...


def wanted(event: base.Event) -> bool:
    """Events incidents are about: automatic rollbacks' start and outcomes, and escalations."""
    if event.kind in (base.ESCALATION, base.BLOCKED_EMERGENCY):
        return True
    return event.automatic and event.kind in (base.STARTED, *OUTCOMES) and bool(event.rollback_id)


def burst_services(event: base.Event) -> list[str]:
    """The services an escalation names: several for a burst (details["services"]), else one."""
    services = event.details.get("services")
    if isinstance(services, list) and services:
        return sorted({str(s) for s in services})
    return [event.service]


def incident_key(event: base.Event) -> str:
    """One issue per rollback id; per service and alert fingerprint for escalations."""
    if event.kind not in (base.ESCALATION, base.BLOCKED_EMERGENCY) and event.rollback_id:
        return f"rollback:{event.rollback_id}"
    services = burst_services(event)
    if len(services) > 1:
        burst = str(event.details.get("burst_id") or "")
        if not burst:
            minute = int(time.time() // 60)
            burst = hashlib.sha256(f"{minute}:{','.join(services)}".encode()).hexdigest()[:16]
        return f"burst:{burst}"
    # Deduplicated per fingerprint, never per startsAt (CONTRACT "CLI", monitor).
    fingerprint = (event.episode or event.rollback_id or event.reason).split(":")[0]
    return f"escalation:{event.service}:{fingerprint}"


def marker(key: str) -> str:
    return f"{MARKER_PREFIX}{key} -->"


def issue_title(event: base.Event) -> str:
    """`Rollback of <service>: <tier> error budget burn (<rollback id>)`."""
    services = burst_services(event)
    who = services[0] if len(services) == 1 else f"{len(services)} services"
    return (
        f"Rollback of {who}: {event.tier} error budget burn ({event.rollback_id or event.reason})"
    )


def issue_labels(event: base.Event) -> list[str]:
    return [LABEL, *(f"service:{s}" for s in burst_services(event))]


def _record_link(public_url: str | None, rollback_id: str | None) -> str | None:
    if not public_url or not rollback_id:
        return None
    return f"{public_url.rstrip('/')}/ui/rollbacks/{rollback_id}"


def issue_body(event: base.Event, key: str, public_url: str | None) -> str:
    """The trigger, the checks, the target and links, with the hidden marker on top."""
    lines = [marker(key), f"**{wording.summary(event)}**", ""]
    services = burst_services(event)
    if len(services) > 1:
        lines += ["Services: " + ", ".join(f"`{s}`" for s in services), ""]
    trigger = event.details.get("trigger")
    lines.append("### Trigger")
    if isinstance(trigger, dict) and trigger:
        lines += [f"- {k}: `{v}`" for k, v in sorted(trigger.items()) if not isinstance(v, dict)]
        labels = trigger.get("labels")
        if isinstance(labels, dict):
            lines += [f"- label {k}: `{v}`" for k, v in sorted(labels.items())]
    else:
        lines.append(
            f"- service `{event.service}`, namespace `{event.namespace}`, tier {event.tier}"
        )
    consumed = wording.consumed_text(event.consumed)
    if consumed:
        lines.append(f"- error budget consumed: {consumed}")
    lines += ["", "### Checks"]
    checks = event.details.get("checks")
    if isinstance(checks, list) and checks:
        for check in checks:
            if isinstance(check, dict):
                mark = "pass" if check.get("ok", check.get("passed")) else "block"
                detail = f" — {check['detail']}" if check.get("detail") else ""
                lines.append(f"- {check.get('name', '?')}: {mark}{detail}")
    else:
        lines.append(f"- decision reason: {wording.reason_text(event.reason)}")
    lines += ["", "### Target"]
    if event.from_revision or event.to_revision:
        lines.append(f"- from `{event.from_revision or '?'}` to `{event.to_revision or '?'}`")
    else:
        lines.append("- none (not rolled back)")
    links = dict(event.links)
    record = _record_link(public_url, event.rollback_id)
    if record:
        links.setdefault("record", record)
    if links:
        lines += ["", "### Links"]
        lines += [f"- [{wording.link_name(k)}]({v})" for k, v in sorted(links.items())]
    return "\n".join(lines) + "\n"


def outcome_comment(event: base.Event, public_url: str | None) -> str:
    """One comment per outcome: completed, failed, not effective, interrupted."""
    lines = [f"**{wording.title(event)}**", "", f"- outcome: `{event.kind}`"]
    if event.stage:
        lines.append(f"- stage: {event.stage}")
    if event.error:
        lines.append(f"- error: {event.error}")
    if event.to_revision:
        lines.append(f"- restored: `{event.to_revision}`")
    record = _record_link(public_url, event.rollback_id)
    if record:
        lines.append(f"- record: {record}")
    return "\n".join(lines) + "\n"


def effective_completion(event: base.Event) -> bool:
    return event.kind == base.COMPLETED and not event.details.get("not_effective")


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
        if event.kind in OPENING:
            if self._claimed(key):
                self._open(event, key)
            return
        self._record_outcome(event, key)

    def _record_outcome(self, event: base.Event, key: str) -> None:
        number = deliver(
            lambda: self._find(key, event.service), retries=self.retries, sleep=self.sleep
        )
        if number is None:
            if not self._claimed(key):
                raise base.NotificationError(
                    f"no incident issue yet for rollback {event.rollback_id} (another replica "
                    "is opening it); outcome not commented"
                )
            number = self._open(event, key)
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
