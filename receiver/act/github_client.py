"""One GitHub client per process, GitHub's rate limits and budget, the branch-head caches.

Every GitHub answer's `X-RateLimit-Remaining` is read (PyGithub keeps it on the requester)
into the gauge `rollback_github_ratelimit_remaining`. Below `LOW_REMAINING` the optional
reads stop: a branch head read in an earlier delivery is reused for `LOW_BUDGET_HEAD_SECONDS`
instead of being read again. A rollback's own reads and writes are never dropped.

Pacing: PyGithub waits 0.25 s between requests and 1 s between writes by default, a guard
for bulk jobs; a rollback is a handful of reads and three dependent writes, so nothing is
paced by default (WRITE_PAUSE_SECONDS = 0). Secondary rate limits (403/429 with Retry-After
or GitHub's rate-limit message) are waited out by the provider, bounded by
RATE_LIMIT_MAX_WAIT_SECONDS; PyGithub's own retry is off so one place decides.

The environment is read once per connection: requests looks up the proxy variables
(HTTPS_PROXY, NO_PROXY, ...) and the CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) again for
every request, walking the whole environment twice (about 0.1 ms a request, a tenth of a
GitHub read's CPU). A service's environment does not change once it runs, so the client's
connection reads them when it is made and then stops looking (`_EnvironmentOnce`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

import requests
from github import Auth, Github, GithubException
from github.Requester import HTTPRequestsConnectionClass, HTTPSRequestsConnectionClass

from receiver import metrics
from receiver.act.gitops_common import HISTORY_DEPTH, BoundedCache, PathCommit
from receiver.act.shared_reads import shared_read
from receiver.errors import ActionError

log = logging.getLogger("receiver.github")

Entry = tuple[str, str, str]  # (mode, type, sha) of a path in a tree

SECONDARY_LIMIT_DEFAULT_WAIT = 60.0  # GitHub: "wait for at least one minute"
LOW_REMAINING = 200  # below this, optional reads stop
LOW_BUDGET_HEAD_SECONDS = 300.0  # how long a known branch head is trusted when the budget is low

_RATE_LIMIT_PHRASES = (
    "secondary rate limit",
    "api rate limit exceeded",
    "please retry your request again later",
    "please wait a few minutes before you try again",
)


class RateLimited(Exception):
    """A rate-limit answer that asks for a longer wait than the receiver accepts."""


def _header(exc: GithubException, name: str) -> str | None:
    for key, value in (exc.headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def message_of(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return str(data or exc.message or "")


def rate_limit_wait(exc: GithubException, now: float) -> float | None:
    """Seconds GitHub asks us to wait for a rate-limit answer, or None when it is not one."""
    if exc.status not in (403, 429):
        return None
    retry_after = _header(exc, "retry-after")
    message = message_of(exc).lower()
    limited = retry_after is not None or any(p in message for p in _RATE_LIMIT_PHRASES)
    if exc.status == 403 and not limited:
        return None
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    if _header(exc, "x-ratelimit-remaining") == "0":
        reset = _header(exc, "x-ratelimit-reset")
        if reset is not None and reset.isdigit():
            return max(0.0, int(reset) - now + 1)
    return SECONDARY_LIMIT_DEFAULT_WAIT if limited else None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.RequestException):
        return True
    if isinstance(exc, GithubException):
        return exc.status >= 500 or rate_limit_wait(exc, time.time()) is not None
    return False


_clients: dict[tuple[str, str, int], Github] = {}
_clients_lock = threading.Lock()


class _EnvironmentOnce:
    """A PyGithub connection that reads the proxy and CA-bundle variables when it is made."""

    protocol: str
    host: str
    port: int
    verify: bool | str
    session: requests.Session

    def _read_environment(self) -> None:
        url = f"{self.protocol}://{self.host}:{self.port}/"
        found = self.session.merge_environment_settings(url, {}, None, self.verify, None)
        self.session.proxies = found["proxies"]  # NO_PROXY already applied for this host
        self.verify = True if found["verify"] is None else found["verify"]
        self.session.trust_env = False  # from now on, no request looks at the environment


class _HTTPConnection(HTTPRequestsConnectionClass, _EnvironmentOnce):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_environment()


class _HTTPSConnection(HTTPSRequestsConnectionClass, _EnvironmentOnce):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_environment()


_OURS: dict[Any, type[_EnvironmentOnce]] = {
    HTTPRequestsConnectionClass: _HTTPConnection,
    HTTPSRequestsConnectionClass: _HTTPSConnection,
}
_CONNECTION_CLASS = "_Requester__connectionClass"  # PyGithub's private name (pinned version)


def _read_environment_once(client: Github) -> None:
    """Make the client's connections `_EnvironmentOnce` (left as they are if PyGithub changed)."""
    requester = client.requester
    ours = _OURS.get(getattr(requester, _CONNECTION_CLASS, None))
    if ours is not None:
        setattr(requester, _CONNECTION_CLASS, ours)


def shared_github(api_url: str, token: str, timeout: int) -> Github:
    """The process's client for this API, token and timeout: one connection pool, reused."""
    key = (api_url, token, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = Github(
                auth=Auth.Token(token) if token else None,
                base_url=api_url,
                timeout=timeout,
                per_page=HISTORY_DEPTH,
                retry=None,
                seconds_between_requests=None,
                seconds_between_writes=None,
                lazy=True,
            )
            _read_environment_once(client)
        return client


class RateBudget:
    """What GitHub said of the token's remaining budget, process-wide."""

    def __init__(self) -> None:
        self.remaining: int | None = None
        self._low_logged = False
        self._lock = threading.Lock()

    def observe(self, client: Github) -> None:
        """Read the budget GitHub sent with the last answer (a no-op before any answer)."""
        remaining = client.requester.rate_limiting[0]
        if remaining < 0:
            return
        with self._lock:
            self.remaining = remaining
            metrics.GITHUB_RATELIMIT_REMAINING.set(remaining)
            if remaining < LOW_REMAINING and not self._low_logged:
                self._low_logged = True
                log.warning(
                    "GitHub rate-limit budget low: optional reads stop, rollbacks still write",
                    extra={"github_ratelimit_remaining": remaining},
                )
            elif remaining >= LOW_REMAINING and self._low_logged:
                self._low_logged = False
                log.info("GitHub rate-limit budget recovered", extra={"remaining": remaining})

    @property
    def low(self) -> bool:
        return self.remaining is not None and self.remaining < LOW_REMAINING


BUDGET = RateBudget()


KNOWN_HEADS: BoundedCache[tuple[str, float]] = BoundedCache()  # (repo, branch) -> (sha, when)


def branch_head(key: Hashable, read: Callable[[], str]) -> str:
    """The branch head: read once per delivery, or reused a while when the budget is low."""
    known = KNOWN_HEADS.get(key)
    if known is not None and BUDGET.low and time.monotonic() - known[1] < LOW_BUDGET_HEAD_SECONDS:
        return known[0]
    sha = shared_read(("github-head", key), read)
    KNOWN_HEADS.put(key, (sha, time.monotonic()))
    return sha


def path_commit(item: dict[str, Any]) -> PathCommit:
    """One entry of GitHub's commit listing (`GET /repos/{o}/{r}/commits`) as a PathCommit."""
    git = item["commit"]
    return PathCommit(
        sha=str(item["sha"]),
        parents=tuple(str(parent["sha"]) for parent in item["parents"]),
        message=str(git["message"]),
        committed_at=datetime.fromisoformat(git["committer"]["date"]).timestamp(),
    )


def walk_entry(call: Callable[..., Any], repo: Any, path: str, tree_sha: str) -> Entry | None:
    """(mode, type, sha) of `path` in a root tree, one level per request (truncated trees)."""
    parts = path.split("/")
    current = tree_sha
    for depth, name in enumerate(parts):
        where = "/".join(parts[:depth]) or "/"
        tree = call(f"read tree of {where}", lambda sha=current: repo.get_git_tree(sha))
        found = next((e for e in tree.tree if e.path == name), None)
        if found is None:
            return None
        if depth == len(parts) - 1:
            return found.mode, found.type, found.sha
        if found.type != "tree":
            return None
        current = found.sha
    return None


def target_sha(call: Any, repo: Any, repo_name: str, commit: str, attempts: int | None) -> str:
    """The full sha of a given target commit; a commit GitHub does not know is refused."""
    try:
        return str(
            call(
                f"read target commit {commit[:12]}",
                lambda: repo.get_git_commit(commit).sha,
                attempts,
            )
        )
    except ActionError as exc:
        if exc.details.get("github_status") in (404, 422):
            raise ActionError(
                "gitops", f"target commit {commit} does not exist in {repo_name}"
            ) from None
        raise
