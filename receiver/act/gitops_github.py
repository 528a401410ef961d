"""GitOps rollback through the GitHub REST API (PyGithub), without a clone.

The path is restored by reusing git objects GitHub already has: the path's tree (or blob) at
the target commit replaces the path in the branch head's tree, in one new commit whose only
parent is the head; the branch ref is then moved by a fast-forward update. Nothing is
uploaded, no other path changes, and a commit exists whole or not at all (the ref moves last).

Pacing: PyGithub waits 0.25 s between requests and 1 s between writes by default, a guard
for bulk jobs. A rollback is a handful of reads and three dependent writes (tree, commit, ref;
five with a pull request): GitHub's "wait a second between writes" guidance is about bulk
writes, and a rollback should not spend a second idling, so nothing is paced by default
(WRITE_PAUSE_SECONDS = 0).
Secondary rate limits (403/429 with Retry-After or GitHub's rate-limit message) are waited
out here, bounded by RATE_LIMIT_MAX_WAIT_SECONDS; PyGithub's own retry is switched off so
one place decides (its default does not cover 429 and waits 60 s on every secondary limit).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException, InputGitTreeElement
from github.Commit import Commit
from github.Repository import Repository
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from receiver.act.base import ActionContext, RollbackAction, RollbackJob, TargetFacts
from receiver.act.gitops_common import (
    HISTORY_DEPTH,
    TRAILER_ID,
    GitOpsOptions,
    PathCommit,
    RestorePlan,
    commit_message,
    facts_from_plan,
    parse_trailers,
    plan_restore,
    pull_request_branch,
    record_plan,
    short,
)
from receiver.decide.targets import normalize_path
from receiver.errors import ActionError

T = TypeVar("T")

STAGE = "gitops"
WRITE_PAUSE_SECONDS = 0.0
EXECUTE_TIMEOUT_SECONDS = 15
CALL_ATTEMPTS = 4  # per API call: rate limits, 5xx and connection errors
RATE_LIMIT_MAX_WAIT_SECONDS = 60.0
SECONDARY_LIMIT_DEFAULT_WAIT = 60.0  # GitHub: "wait for at least one minute"

_RATE_LIMIT_PHRASES = (
    "secondary rate limit",
    "api rate limit exceeded",
    "please retry your request again later",
    "please wait a few minutes before you try again",
)


class _RateLimited(Exception):
    """A rate-limit answer that asks for a longer wait than the receiver accepts."""


def _header(exc: GithubException, name: str) -> str | None:
    for key, value in (exc.headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return str(data or exc.message or "")


def rate_limit_wait(exc: GithubException, now: float) -> float | None:
    """Seconds GitHub asks us to wait for a rate-limit answer, or None when it is not one."""
    if exc.status not in (403, 429):
        return None
    retry_after = _header(exc, "retry-after")
    message = _message(exc).lower()
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


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.RequestException):
        return True
    if isinstance(exc, GithubException):
        return exc.status >= 500 or rate_limit_wait(exc, time.time()) is not None
    return False


class GitHubRevert(RollbackAction):
    """Restore GITOPS_PATH on GITOPS_BRANCH through the GitHub API (push or pull request)."""

    stage = STAGE

    def __init__(
        self,
        options: GitOpsOptions,
        *,
        api_url: str = "https://api.github.com",
        write_pause: float = WRITE_PAUSE_SECONDS,
        call_attempts: int = CALL_ATTEMPTS,
        rate_limit_max_wait: float = RATE_LIMIT_MAX_WAIT_SECONDS,
        execute_timeout: int = EXECUTE_TIMEOUT_SECONDS,
    ) -> None:
        self.repo_name = options.repo
        self.path = normalize_path(options.path)
        self.branch = options.branch
        self.token = options.token
        self.api_url = api_url.rstrip("/")
        self.pull_request = options.pull_request
        self.write_pause = write_pause
        self.push_attempts = options.push_attempts
        self.call_attempts = call_attempts
        self.rate_limit_max_wait = rate_limit_max_wait
        self.inspect_timeout = options.inspect_timeout
        self.execute_timeout = execute_timeout
        self.sleep = options.sleep

    # -- plumbing --------------------------------------------------------------------------

    def _github(self, timeout: int) -> Github:
        token = self.token.get()
        return Github(
            auth=Auth.Token(token) if token else None,
            base_url=self.api_url,
            timeout=timeout,
            per_page=HISTORY_DEPTH,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=self.write_pause or None,
            lazy=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, GithubException):
            wanted = rate_limit_wait(exc, time.time())
            if wanted is not None:
                if wanted > self.rate_limit_max_wait:
                    raise _RateLimited(
                        f"GitHub rate limit: asked to wait {wanted:.0f} s, more than the "
                        f"{self.rate_limit_max_wait:.0f} s a rollback waits"
                    )
                return wanted
        return float(min(0.5 * 2 ** (state.attempt_number - 1), 8.0))

    def _call(self, what: str, fn: Callable[[], T], attempts: int | None = None) -> T:
        """Run one API call; rate limits, 5xx and connection errors are retried, bounded."""
        retrying = Retrying(
            stop=stop_after_attempt(attempts or self.call_attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except _RateLimited as exc:
            raise ActionError(STAGE, f"{what}: {exc}") from None
        except GithubException as exc:
            raise self._error(what, exc) from None
        except requests.RequestException as exc:
            raise ActionError(
                STAGE, f"{what}: cannot reach GitHub at {self.api_url} ({exc.__class__.__name__})"
            ) from None

    def _error(self, what: str, exc: GithubException) -> ActionError:
        message = _message(exc)
        where = f"repository {self.repo_name}, branch {self.branch}"
        if exc.status == 401:
            text = f"{what}: GitHub answered 401 {message or 'Bad credentials'}; check GITOPS_TOKEN"
        elif exc.status == 404:
            text = (
                f"{what}: GitHub answered 404 {message or 'Not Found'} ({where}); check "
                "GITOPS_REPO, GITOPS_BRANCH and the token's access to the repository"
            )
        elif rate_limit_wait(exc, time.time()) is not None:
            text = f"{what}: GitHub rate limit still exceeded after {self.call_attempts} tries"
        else:
            text = f"{what}: GitHub answered {exc.status} {message}".rstrip()
        return ActionError(STAGE, text, {"github_status": exc.status})

    def _history(self, repo: Repository, attempts: int | None = None) -> list[PathCommit]:
        def read() -> list[PathCommit]:
            commits = repo.get_commits(sha=self.branch, path=self.path)
            out: list[PathCommit] = []
            commit: Commit
            for commit in itertools.islice(commits, HISTORY_DEPTH):
                git = commit.commit
                out.append(
                    PathCommit(
                        sha=commit.sha,
                        parents=tuple(p.sha for p in commit.parents),
                        message=git.message,
                        committed_at=git.committer.date.timestamp(),
                    )
                )
            return out

        return self._call(f"list commits of {self.path}", read, attempts)

    def _plan(self, job: RollbackJob, repo: Repository, attempts: int | None = None) -> RestorePlan:
        plan = plan_restore(job, self.path, self._history(repo, attempts), STAGE)
        if job.target_commit:
            target = self._target_sha(repo, job.target_commit, attempts)
            plan = RestorePlan(
                plan.rolled_back_from, target, plan.last_change_at, plan.already_rolled_back
            )
        return plan

    def _target_sha(self, repo: Repository, commit: str, attempts: int | None) -> str:
        """The full sha of a given target commit; a commit GitHub does not know is refused."""
        try:
            return self._call(
                f"read target commit {short(commit)}",
                lambda: repo.get_git_commit(commit).sha,
                attempts,
            )
        except ActionError as exc:
            if exc.details.get("github_status") in (404, 422):
                raise ActionError(
                    STAGE, f"target commit {commit} does not exist in {self.repo_name}"
                ) from None
            raise

    def _entry(self, repo: Repository, tree_sha: str) -> tuple[str, str, str] | None:
        """(mode, type, sha) of the path in a root tree, walking one level per component."""
        parts = self.path.split("/")
        current = tree_sha
        for depth, name in enumerate(parts):
            tree = self._call(
                f"read tree of {'/'.join(parts[:depth]) or '/'}",
                lambda sha=current: repo.get_git_tree(sha),  # type: ignore[misc]
            )
            found = next((e for e in tree.tree if e.path == name), None)
            if found is None:
                return None
            if depth == len(parts) - 1:
                return found.mode, found.type, found.sha
            if found.type != "tree":
                return None
            current = found.sha
        return None

    # -- the interface ---------------------------------------------------------------------

    def inspect(self, job: RollbackJob) -> TargetFacts:
        """One history page of the path: current, target, newest change, already rolled back."""
        with self._github(self.inspect_timeout) as gh:
            repo = gh.get_repo(self.repo_name)
            # One try: inspect runs in the webhook request; in doubt the receiver does not act.
            plan = self._plan(job, repo, attempts=1)
        return facts_from_plan(plan, "github")

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Write one restore commit and fast-forward the branch (or open a pull request)."""
        with self._github(self.execute_timeout) as gh:
            repo = gh.get_repo(self.repo_name)
            plan = self._plan(job, repo)
            record_plan(ctx.details, plan)
            if self.pull_request:
                self._open_pull_request(job, ctx, repo, plan)
                return
            for attempt in range(1, self.push_attempts + 1):
                if self._push_once(job, ctx, repo, plan):
                    return
                ctx.log(
                    f"branch {self.branch} moved while restoring {self.path} "
                    f"(attempt {attempt} of {self.push_attempts}); rebuilding on the new head"
                )
                self.sleep(min(0.5 * attempt, 2.0))
        raise ActionError(
            STAGE,
            f"branch {self.branch} kept moving: 'Update is not a fast forward' "
            f"{self.push_attempts} times; nothing was pushed",
            dict(ctx.details),
        )

    def _build_commit(
        self,
        job: RollbackJob,
        ctx: ActionContext,
        repo: Repository,
        plan: RestorePlan,
        head_sha: str,
    ) -> str:
        """Create the restore commit on top of `head_sha` (not yet on any branch)."""
        head = self._call("read head commit", lambda: repo.get_git_commit(head_sha))
        good = self._call(
            f"read target commit {short(plan.target)}", lambda: repo.get_git_commit(plan.target)
        )
        old = self._entry(repo, good.tree.sha)
        new = self._entry(repo, head.tree.sha)
        if old == new:
            raise ActionError(
                STAGE,
                f"{self.path} on {self.branch} already matches {short(plan.target)}; "
                "nothing to restore",
                dict(ctx.details),
            )
        if old is not None:
            element = InputGitTreeElement(self.path, old[0], old[1], sha=old[2])
        else:  # the path did not exist at the target: delete it (GitHub: sha null)
            assert new is not None
            element = InputGitTreeElement(self.path, new[0], new[1], sha=None)
        ctx.ensure_owned()
        tree = self._call(
            "create tree", lambda: repo.create_git_tree([element], base_tree=head.tree)
        )
        message = commit_message(job, self.path, plan.rolled_back_from, plan.target)
        ctx.ensure_owned()
        commit = self._call("create commit", lambda: repo.create_git_commit(message, tree, [head]))
        return commit.sha

    def _push_once(
        self, job: RollbackJob, ctx: ActionContext, repo: Repository, plan: RestorePlan
    ) -> bool:
        """One attempt: False when the branch moved under us (the 422 non-fast-forward)."""
        ref = repo.get_git_ref(f"heads/{self.branch}")
        head_sha = self._call(f"read branch {self.branch}", lambda: ref.object.sha)
        head_message = self._call("read head commit", lambda: repo.get_git_commit(head_sha).message)
        if parse_trailers(head_message).get(TRAILER_ID) == job.rollback_id:
            ctx.details["revert_commit"] = head_sha  # an earlier attempt landed; answer was lost
            return True
        sha = self._build_commit(job, ctx, repo, plan, head_sha)
        ctx.ensure_owned()
        try:
            self._call(f"update branch {self.branch}", lambda: ref.edit(sha, force=False))
        except ActionError as exc:
            if exc.details.get("github_status") == 422 and "fast forward" in exc.message:
                return False
            raise
        ctx.details["revert_commit"] = sha
        ctx.log(
            f"pushed {short(sha)} to {self.branch}: {self.path} restored to {short(plan.target)}"
        )
        return True

    def _open_pull_request(
        self, job: RollbackJob, ctx: ActionContext, repo: Repository, plan: RestorePlan
    ) -> None:
        """Put the restore commit on its own branch and open a pull request against the base."""
        ref = repo.get_git_ref(f"heads/{self.branch}")
        head_sha = self._call(f"read branch {self.branch}", lambda: ref.object.sha)
        sha = self._build_commit(job, ctx, repo, plan, head_sha)
        branch = pull_request_branch(job)
        ctx.ensure_owned()
        self._call(
            f"create branch {branch}", lambda: repo.create_git_ref(f"refs/heads/{branch}", sha)
        )
        ctx.details["revert_commit"] = sha
        ctx.details["pull_request_branch"] = branch
        message = commit_message(job, self.path, plan.rolled_back_from, plan.target)
        title, _, body = message.partition("\n\n")
        ctx.ensure_owned()
        pull: Any = self._call(
            "open pull request",
            lambda: repo.create_pull(self.branch, branch, title=title, body=body),
        )
        ctx.details["pull_request"] = pull.html_url
        ctx.details["pull_request_number"] = pull.number
        ctx.details["validated"] = False
        ctx.log(f"opened pull request #{pull.number} restoring {self.path}; merge to deploy")
