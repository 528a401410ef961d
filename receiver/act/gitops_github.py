"""GitOps rollback through the GitHub REST API (PyGithub), without a clone.

The path is restored by reusing git objects GitHub already has: the path's tree (or blob) at
the target commit replaces the path in the branch head's tree, in one new commit whose only
parent is the head; the branch ref is then moved by a fast-forward update. Nothing is
uploaded, no other path changes, and a commit exists whole or not at all (the ref moves last).

Requests of one rollback (docs/performance.md): inspect reads the branch head (once per
delivery and repo + branch) and the path's history (once per head); execute reads the head's
and the target's trees (recursive, one request each whatever the path's depth), then creates
the tree and the commit and fast-forwards the ref. A moved head is rebuilt on, until a
deadline, as long as the path itself is still what the plan saw. Pacing and rate limits:
receiver/act/github_client.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from github import Github, GithubException, InputGitTreeElement
from github.GitTree import GitTree
from github.Repository import Repository
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from receiver.act.base import ActionContext, RollbackAction, RollbackJob, TargetFacts
from receiver.act.github_client import (
    BUDGET,
    Entry,
    RateLimited,
    branch_head,
    is_transient,
    message_of,
    path_commit,
    rate_limit_wait,
    shared_github,
    target_sha,
    walk_entry,
)
from receiver.act.gitops_common import (
    HISTORY_DEPTH,
    BoundedCache,
    GitOpsOptions,
    PathCommit,
    PushRetry,
    RestorePlan,
    commit_message,
    facts_from_plan,
    past_rollbacks_in,
    plan_restore,
    pull_request_branch,
    record_plan,
    short,
)
from receiver.decide.targets import normalize_path
from receiver.errors import ActionError
from receiver.state.memory import PastRollback

T = TypeVar("T")

STAGE = "gitops"
WRITE_PAUSE_SECONDS = 0.0
EXECUTE_TIMEOUT_SECONDS = 15
CALL_ATTEMPTS = 4  # per API call: rate limits, 5xx and connection errors
RATE_LIMIT_MAX_WAIT_SECONDS = 60.0

# The newest commits of a path, by (API, repository, path, branch head): a moved head misses.
HISTORIES: BoundedCache[list[PathCommit]] = BoundedCache()


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
        self.retry = PushRetry.of(options, self.path)
        self.call_attempts = call_attempts
        self.rate_limit_max_wait = rate_limit_max_wait
        self.inspect_timeout = options.inspect_timeout
        self.execute_timeout = execute_timeout
        self.sleep = options.sleep
        self._client: Github | None = None
        self._inspected: tuple[str, list[PathCommit]] | None = None  # (head, history)

    # -- plumbing --------------------------------------------------------------------------

    def _github(self, timeout: int) -> Github:
        """The process's shared client (one connection pool); never closed per rollback."""
        self._client = shared_github(self.api_url, self.token.get() or "", timeout)
        return self._client

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, GithubException):
            wanted = rate_limit_wait(exc, time.time())
            if wanted is not None:
                if wanted > self.rate_limit_max_wait:
                    raise RateLimited(
                        f"GitHub rate limit: asked to wait {wanted:.0f} s, more than the "
                        f"{self.rate_limit_max_wait:.0f} s a rollback waits"
                    )
                return wanted
        return float(min(0.5 * 2 ** (state.attempt_number - 1), 8.0))

    def _call(self, what: str, fn: Callable[[], T], attempts: int | None = None) -> T:
        """Run one API call; rate limits, 5xx and connection errors are retried, bounded.

        One attempt (an inspect's: in doubt the receiver does not act) is a plain call.
        """
        tries = attempts or self.call_attempts
        try:
            if tries == 1:
                result = fn()
            else:
                result = Retrying(
                    stop=stop_after_attempt(tries),
                    wait=self._wait,
                    retry=retry_if_exception(is_transient),
                    sleep=self.sleep,
                    reraise=True,
                )(fn)
        except RateLimited as exc:
            raise ActionError(STAGE, f"{what}: {exc}") from None
        except GithubException as exc:
            raise self._error(what, exc) from None
        except requests.RequestException as exc:
            raise ActionError(
                STAGE, f"{what}: cannot reach GitHub at {self.api_url} ({exc.__class__.__name__})"
            ) from None
        finally:
            if self._client is not None:
                BUDGET.observe(self._client)
        if self.write_pause and what.startswith(("create", "update", "open")):
            self.sleep(self.write_pause)  # the shared client cannot pace per provider
        return result

    def _error(self, what: str, exc: GithubException) -> ActionError:
        message = message_of(exc)
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

    def _head(self, repo: Repository, attempts: int | None = None) -> str:
        """The branch head's sha (one request, read as JSON: no lazy GitRef to complete)."""
        what = f"read branch {self.branch}"
        url = f"{repo.url}/git/ref/{quote('heads/' + self.branch)}"  # as PyGithub's get_git_ref
        _headers, ref = self._call(
            what, lambda: repo.requester.requestJsonAndCheck("GET", url), attempts
        )
        try:
            sha = ref["object"]["sha"]
        except (KeyError, TypeError):
            sha = None
        if not isinstance(sha, str) or not sha:
            raise ActionError(STAGE, f"{what}: GitHub answered an unexpected body")
        return sha

    def _history_at(
        self, repo: Repository, head: str, attempts: int | None = None
    ) -> list[PathCommit]:
        """The path's newest commits from `head`, cached by head: read once per head."""
        key = (self.api_url, self.repo_name, self.path, head)
        cached = HISTORIES.get(key)
        if cached is None:
            cached = self._history(repo, head, attempts)
            HISTORIES.put(key, cached)
        return cached

    def _history(
        self, repo: Repository, head: str, attempts: int | None = None
    ) -> list[PathCommit]:
        # One page, read as JSON: PyGithub's Commit objects cost more than the request itself.
        query = {"sha": head, "path": self.path, "per_page": HISTORY_DEPTH}
        what = f"list commits of {self.path}"
        _headers, page = self._call(
            what,
            lambda: repo.requester.requestJsonAndCheck("GET", f"{repo.url}/commits", query),
            attempts,
        )
        try:
            return [path_commit(item) for item in page[:HISTORY_DEPTH]]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ActionError(STAGE, f"{what}: GitHub answered an unexpected body") from None

    def _plan(
        self, job: RollbackJob, repo: Repository, attempts: int | None = None
    ) -> tuple[str, RestorePlan]:
        """The head the plan was made at, and the plan (inspect's, when it ran)."""
        if self._inspected is not None:
            head, history = self._inspected
        else:
            head = self._head(repo)
            history = self._history_at(repo, head)
        plan = plan_restore(job, self.path, history, STAGE)
        if job.target_commit:
            target = target_sha(self._call, repo, self.repo_name, job.target_commit, attempts)
            plan = RestorePlan(
                plan.rolled_back_from, target, plan.last_change_at, plan.already_rolled_back
            )
        return head, plan

    def _tree(self, repo: Repository, commit_sha: str) -> GitTree:
        """The whole tree of a commit in one request (the trees API takes a commit sha)."""
        return self._call(
            f"read tree of {short(commit_sha)}",
            lambda: repo.get_git_tree(commit_sha, recursive=True),
        )

    def _entry_at(self, repo: Repository, tree: GitTree) -> Entry | None:
        """(mode, type, sha) of the path in a recursive tree; walked only when truncated."""
        if tree.truncated:
            return walk_entry(self._call, repo, self.path, tree.sha)
        found = next((e for e in tree.tree if e.path == self.path), None)
        return None if found is None else (found.mode, found.type, found.sha)

    # -- the interface ---------------------------------------------------------------------

    def inspect(self, job: RollbackJob) -> TargetFacts:
        """The branch head (once per delivery) and the path's history (once per head)."""
        repo = self._github(self.inspect_timeout).get_repo(self.repo_name)
        head = self._delivery_head(repo)
        self._inspected = (head, self._history_at(repo, head, attempts=1))
        return facts_from_plan(self._plan(job, repo, attempts=1)[1], "github")

    def past_rollbacks(self, job: RollbackJob) -> tuple[PastRollback, ...]:
        """The receiver's rollback commits in the path's last history page."""
        repo = self._github(self.inspect_timeout).get_repo(self.repo_name)
        return past_rollbacks_in(self._history_at(repo, self._delivery_head(repo), attempts=1))

    def _delivery_head(self, repo: Repository) -> str:
        """The branch head, read once per delivery (one try: in doubt the receiver does not act)."""
        key = (self.api_url, self.repo_name, self.branch)
        return branch_head(key, lambda: self._head(repo, attempts=1))

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Write one restore commit and fast-forward the branch (or open a pull request)."""
        repo = self._github(self.execute_timeout).get_repo(self.repo_name)
        head, plan = self._plan(job, repo)
        record_plan(ctx.details, plan)
        if self.pull_request:
            self._open_pull_request(job, ctx, repo, plan)
            return
        restore = _Restore(plan)
        for attempt in self.retry.rounds(ctx.log):
            if attempt > 1:
                head = self._head(repo)
                if head == restore.pushed:  # an earlier attempt landed; its answer was lost
                    ctx.details["revert_commit"] = head
                    return
            if self._push_once(job, ctx, repo, restore, head):
                return
        raise self.retry.kept_moving("'Update is not a fast forward'", attempt, ctx.details)

    def _build_commit(
        self,
        job: RollbackJob,
        ctx: ActionContext,
        repo: Repository,
        restore: _Restore,
        head_sha: str,
    ) -> str:
        """Create the restore commit on top of `head_sha` (not yet on any branch)."""
        plan = restore.plan
        head_tree = self._tree(repo, head_sha)
        new = self._entry_at(repo, head_tree)
        if restore.planned is None:
            restore.planned = (new,)
        elif restore.planned[0] != new:  # someone else changed our path since the plan
            raise self.retry.path_changed(ctx.details)
        if restore.old is None:
            restore.old = (self._entry_at(repo, self._tree(repo, plan.target)),)
        old = restore.old[0]
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
            "create tree", lambda: repo.create_git_tree([element], base_tree=head_tree)
        )
        message = commit_message(job, self.path, plan.rolled_back_from, plan.target)
        ctx.ensure_owned()
        body = {"message": message, "tree": tree.sha, "parents": [head_sha]}
        requester = self._github(self.execute_timeout).requester
        _headers, data = self._call(
            "create commit",
            lambda: requester.requestJsonAndCheck("POST", f"{repo.url}/git/commits", input=body),
        )
        return str(data["sha"])

    def _push_once(
        self,
        job: RollbackJob,
        ctx: ActionContext,
        repo: Repository,
        restore: _Restore,
        head_sha: str,
    ) -> bool:
        """One attempt: False when the branch moved under us (the 422 non-fast-forward)."""
        sha = self._build_commit(job, ctx, repo, restore, head_sha)
        restore.pushed = sha
        ctx.ensure_owned()
        ref = repo.get_git_ref(f"heads/{self.branch}")  # lazy: no request
        try:
            self._call(f"update branch {self.branch}", lambda: ref.edit(sha, force=False))
        except ActionError as exc:
            if exc.details.get("github_status") == 422 and "fast forward" in exc.message:
                return False
            raise
        ctx.details["revert_commit"] = sha
        ctx.log(
            f"pushed {short(sha)} to {self.branch}: {self.path} restored to "
            f"{short(restore.plan.target)}"
        )
        return True

    def _open_pull_request(
        self, job: RollbackJob, ctx: ActionContext, repo: Repository, plan: RestorePlan
    ) -> None:
        """Put the restore commit on its own branch and open a pull request against the base."""
        sha = self._build_commit(job, ctx, repo, _Restore(plan), self._head(repo))
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


class _Restore:
    """One restore across push attempts: the plan, the entries read, the commit last pushed."""

    def __init__(self, plan: RestorePlan) -> None:
        self.plan = plan
        self.planned: tuple[Entry | None] | None = None  # the path at the first head built on
        self.old: tuple[Entry | None] | None = None  # the path at the target
        self.pushed: str | None = None
