"""GitOps rollback with the git CLI on a cached bare clone: any git URL (https, ssh, file).

The same restore as the GitHub provider, built with plumbing on a throwaway index (no work
tree, so nothing can be left half-checked-out): the head's tree with the path replaced by its
tree at the target, committed on top of the head, pushed without force. A push rejected as
non-fast-forward (someone pushed first) is rebuilt on the fetched new head until a deadline
(gitops_common.PushRetry), as long as the path itself is still what the plan saw.

One rollback at a time uses the clone on the whole host (clone_lock.CloneLock, a bounded
wait): each inspect, history read and execute, with all its rebuild rounds, holds it.

Credentials: GITOPS_TOKEN reaches git through GIT_ASKPASS (a tiny script that reads it from
the child's environment), never through the URL; userinfo already in GITOPS_REPO and the
token are scrubbed from every message. ssh runs in BatchMode so it never prompts.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from receiver.act.base import ActionContext, RollbackAction, RollbackJob, TargetFacts
from receiver.act.clone_lock import CLONE_WAIT_SECONDS, CloneLock
from receiver.act.git_env import inherited_environment
from receiver.act.git_process import run_git
from receiver.act.gitops_common import (
    HISTORY_DEPTH,
    TRAILER_ID,
    BoundedCache,
    GitOpsOptions,
    PathCommit,
    PushRetry,
    RestorePlan,
    commit_message,
    facts_from_plan,
    fetched_head,
    parse_trailers,
    past_rollbacks_in,
    plan_restore,
    pull_request_branch,
    record_plan,
    short,
)
from receiver.act.shared_reads import shared_read
from receiver.decide.targets import normalize_path
from receiver.errors import ActionError
from receiver.state.memory import PastRollback

STAGE = "gitops"
EXECUTE_TIMEOUT_SECONDS = 60.0
ZERO_SHA = "0" * 40
COMMITTER_NAME = "rollback-receiver"
COMMITTER_EMAIL = "rollback-receiver@localhost"

_ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "${ROLLBACK_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "$ROLLBACK_GIT_TOKEN" ;;
esac
"""
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@")
_REJECTED = ("non-fast-forward", "fetch first", "[rejected]", "stale info", "cannot lock ref")

# The newest commits of a path, by (clone, path, fetched head): a moved head reads it again.
HISTORIES: BoundedCache[list[PathCommit]] = BoundedCache()


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove URL userinfo and any secret value from text meant for logs and errors."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def default_cache_dir() -> Path:
    """Where clones are cached when no directory is given (the temp dir survives a worker)."""
    return Path(tempfile.gettempdir()) / "rollback-receiver-git"


@lru_cache(maxsize=256)
def _clone_of(url: str, root: str) -> tuple[Path, CloneLock]:
    """The cached clone of a repository under `root`, and its lock (built once per process)."""
    key = hashlib.sha256(redact(url).encode()).hexdigest()[:16]
    clone = Path(root) / f"{key}.git"
    return clone, CloneLock(clone, redact(url))


class GitCommandError(Exception):
    """A git command failed; the text and `output` (all of stderr) are already redacted."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class GitRevert(RollbackAction):
    """Restore GITOPS_PATH on GITOPS_BRANCH with git (push, or push a branch for review)."""

    stage = STAGE

    def __init__(
        self,
        options: GitOpsOptions,
        *,
        cache_dir: Path | str | None = None,
        execute_timeout: float = EXECUTE_TIMEOUT_SECONDS,
        clone_wait: float = CLONE_WAIT_SECONDS,
    ) -> None:
        url = options.repo
        self.url = url
        self.path = normalize_path(options.path)
        self.branch = options.branch
        self.token = options.token
        self.pull_request = options.pull_request
        self.retry = PushRetry.of(options, self.path)
        self.inspect_timeout = float(options.inspect_timeout)
        self.execute_timeout = execute_timeout
        root = os.fspath(cache_dir) if cache_dir is not None else str(default_cache_dir())
        # Rollbacks of one repository take turns on its clone, across threads and processes.
        self.clone, self.clone_lock = _clone_of(url, root)
        self.remote_ref = f"refs/remotes/origin/{self.branch}"
        self.clone_wait = clone_wait

    # -- git -------------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        token = self.token.get()
        return (token,) if token else ()

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = inherited_environment()
        env.update(
            {
                "GIT_DIR": str(self.clone),
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": COMMITTER_NAME,
                "GIT_AUTHOR_EMAIL": COMMITTER_EMAIL,
                "GIT_COMMITTER_NAME": COMMITTER_NAME,
                "GIT_COMMITTER_EMAIL": COMMITTER_EMAIL,
                "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
            }
        )
        token = self.token.get()
        if token:
            askpass = self.clone.parent / "askpass.sh"
            if not askpass.exists():  # write then rename: another worker may run it meanwhile
                self.clone.parent.mkdir(parents=True, exist_ok=True)
                partial = askpass.with_name(f"askpass.{os.getpid()}.{threading.get_ident()}")
                partial.write_text(_ASKPASS, encoding="utf-8")
                partial.chmod(0o700)
                partial.replace(askpass)
            env["GIT_ASKPASS"] = str(askpass)
            env["ROLLBACK_GIT_TOKEN"] = token
        env.update(extra or {})
        return env

    def _git(
        self,
        *args: str,
        timeout: float,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run git on the cached clone; raise GitCommandError with a redacted message."""
        try:
            result = run_git(
                ["git", *args],
                self._env(env),
                timeout,
                stdin.encode() if stdin is not None else None,
            )
        except subprocess.TimeoutExpired:
            raise GitCommandError(f"git {args[0]} timed out after {timeout:.0f} s") from None
        if result.returncode != 0:
            stderr = redact(result.stderr.decode(errors="replace"), self._secrets())
            lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith("hint:")]
            detail = " / ".join(lines[-3:]) or f"exit {result.returncode}"
            raise GitCommandError(f"git {args[0]} failed: {detail}", stderr)
        return result.stdout.decode(errors="replace").rstrip("\n")

    def _fail(
        self, what: str, exc: GitCommandError, ctx: ActionContext | None = None
    ) -> ActionError:
        return ActionError(
            STAGE, f"{what} ({redact(self.url)}): {exc}", dict(ctx.details) if ctx else {}
        )

    def _fetch(self, timeout: float) -> None:
        """Create the bare cache on first use, then fetch the branch into origin/<branch>."""
        if not (self.clone / "HEAD").exists():
            self.clone.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["git", "init", "-q", "--bare", str(self.clone)],
                check=True,
                capture_output=True,
                timeout=30,
                env=self._env(),
            )
            self._git("config", "remote.origin.url", self.url, timeout=timeout)
        self._git(
            "fetch",
            "--quiet",
            "--no-tags",
            "origin",
            f"+refs/heads/{self.branch}:{self.remote_ref}",
            timeout=timeout,
        )

    def _fetch_once(self, timeout: float) -> None:
        """`_fetch`, once per delivery and clone + branch: the alerts of a delivery share it."""
        shared_read(("git-fetch", str(self.clone), self.branch), lambda: self._fetch(timeout))

    def _history(self, timeout: float, head: str | None = None) -> list[PathCommit]:
        """The path's newest commits at `head` (else the fetched head), read once per head."""
        head = head or fetched_head(self.clone, self.remote_ref)
        if head is None:
            return self._read_history(self.remote_ref, timeout)
        key = (str(self.clone), self.path, head)
        cached = HISTORIES.get(key)
        if cached is None:
            cached = self._read_history(head, timeout)
            HISTORIES.put(key, cached)
        return cached

    def _read_history(self, revision: str, timeout: float) -> list[PathCommit]:
        out = self._git(
            "log",
            f"-n{HISTORY_DEPTH}",
            "--format=%H%x00%P%x00%ct%x00%B%x1e",
            revision,
            "--",
            self.path,
            timeout=timeout,
        )
        history = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            sha, parents, stamp, message = record.split("\x00", 3)
            history.append(PathCommit(sha, tuple(parents.split()), message, float(stamp)))
        return history

    @contextmanager
    def _index(self) -> Iterator[dict[str, str]]:
        with tempfile.TemporaryDirectory(prefix="rollback-index-") as tmp:
            yield {"GIT_INDEX_FILE": str(Path(tmp) / "index")}

    def _restore_tree(self, head: str, target: str, timeout: float) -> str:
        """The head's tree with the path replaced by its content at `target` (or removed)."""
        with self._index() as env:
            self._git("read-tree", head, env=env, timeout=timeout)
            names = self._git(
                "ls-tree", "-r", "-z", "--name-only", head, "--", self.path, timeout=timeout
            )
            removals = "".join(f"0 {ZERO_SHA}\t{n}\0" for n in names.split("\0") if n)
            if removals:
                self._git(
                    "update-index", "-z", "--index-info", stdin=removals, env=env, timeout=timeout
                )
            additions = self._git("ls-tree", "-r", "-z", target, "--", self.path, timeout=timeout)
            if additions:
                self._git(
                    "update-index", "-z", "--index-info", stdin=additions, env=env, timeout=timeout
                )
            return self._git("write-tree", env=env, timeout=timeout)

    # -- the interface ---------------------------------------------------------------------

    def inspect(self, job: RollbackJob) -> TargetFacts:
        """Fetch the branch and read the path's history: current, target, newest change."""
        with self.clone_lock.held(self.clone_wait):
            plan = plan_restore(job, self.path, self._recent_history(), STAGE)
            if job.target_commit:
                plan = RestorePlan(
                    plan.rolled_back_from,
                    self._target_sha(job.target_commit, self.inspect_timeout),
                    plan.last_change_at,
                    plan.already_rolled_back,
                )
        return facts_from_plan(plan, "git")

    def _target_sha(self, commit: str, timeout: float) -> str:
        """The full sha of a given target commit; one the fetched repository lacks is refused."""
        try:
            return self._git(
                "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}", timeout=timeout
            )
        except GitCommandError:
            raise ActionError(
                STAGE, f"target commit {commit} does not exist in {redact(self.url)}"
            ) from None

    def past_rollbacks(self, job: RollbackJob) -> tuple[PastRollback, ...]:
        """The receiver's rollback commits in the path's recent history."""
        with self.clone_lock.held(self.clone_wait):
            return past_rollbacks_in(self._recent_history())

    def _recent_history(self) -> list[PathCommit]:
        """The delivery's fetch, then the path's history at its head (the clone held)."""
        try:
            self._fetch_once(self.inspect_timeout)
            return self._history(self.inspect_timeout)
        except GitCommandError as exc:
            raise self._fail("cannot read the gitops repository", exc) from None

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Commit the restore on top of the branch and push it, rebuilding after a lost race."""
        timeout = self.execute_timeout
        with self.clone_lock.held(self.clone_wait, ctx.details):
            try:
                self._fetch(timeout)
                head = self._git("rev-parse", self.remote_ref, timeout=timeout)
                plan = plan_restore(job, self.path, self._history(timeout, head), STAGE)
                if job.target_commit:
                    target = self._target_sha(job.target_commit, timeout)
                    plan = RestorePlan(
                        plan.rolled_back_from, target, plan.last_change_at, plan.already_rolled_back
                    )
                planned = self._entry(head, timeout)
            except GitCommandError as exc:
                raise self._fail("cannot read the gitops repository", exc, ctx) from None
            record_plan(ctx.details, plan)
            for attempt in self.retry.rounds(ctx.log):
                try:
                    if attempt > 1:
                        self._fetch(timeout)
                        head = self._git("rev-parse", self.remote_ref, timeout=timeout)
                    if self._push_once(job, ctx, plan, head, planned):
                        return
                except GitCommandError as exc:
                    raise self._fail("git rollback failed", exc, ctx) from None
        raise self.retry.kept_moving("push rejected as non-fast-forward", attempt, ctx.details)

    def _entry(self, head: str, timeout: float) -> str:
        """The path's entry (mode, type, object) in the head's tree; empty when it is absent."""
        return self._git("ls-tree", "--full-tree", head, "--", self.path, timeout=timeout)

    def _push_once(
        self, job: RollbackJob, ctx: ActionContext, plan: RestorePlan, head: str, planned: str
    ) -> bool:
        """Build one restore commit on `head` and push it; False when the push lost a race."""
        timeout = self.execute_timeout
        head_message = self._git("log", "-1", "--format=%B", head, timeout=timeout)
        if parse_trailers(head_message).get(TRAILER_ID) == job.rollback_id:
            ctx.details["revert_commit"] = head  # an earlier push landed
            return True
        if self._entry(head, timeout) != planned:  # someone else changed our path since the plan
            raise self.retry.path_changed(ctx.details)
        tree = self._restore_tree(head, plan.target, timeout)
        if tree == self._git("rev-parse", f"{head}^{{tree}}", timeout=timeout):
            raise ActionError(
                STAGE,
                f"{self.path} on {self.branch} already matches {short(plan.target)}; "
                "nothing to restore",
                dict(ctx.details),
            )
        message = commit_message(job, self.path, plan.rolled_back_from, plan.target)
        sha = self._git("commit-tree", tree, "-p", head, "-F", "-", stdin=message, timeout=timeout)
        branch = pull_request_branch(job) if self.pull_request else self.branch
        ctx.ensure_owned()
        if not self._push(sha, branch, timeout):
            return False
        ctx.details["revert_commit"] = sha
        if self.pull_request:
            ctx.details["pull_request"] = branch
            ctx.details["pull_request_branch"] = branch
            ctx.details["validated"] = False
            ctx.log(f"pushed {short(sha)} to branch {branch}; merge it into {self.branch}")
        else:
            ctx.log(
                f"pushed {short(sha)} to {self.branch}: {self.path} restored to "
                f"{short(plan.target)}"
            )
        return True

    def _push(self, sha: str, branch: str, timeout: float) -> bool:
        """Push without force; False when the remote rejected it as not a fast-forward."""
        try:
            self._git("push", "origin", f"{sha}:refs/heads/{branch}", timeout=timeout)
        except GitCommandError as exc:
            if any(marker in exc.output for marker in _REJECTED):
                return False
            raise
        return True
