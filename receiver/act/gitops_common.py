"""What both GitOps providers share: the commit message, its trailers, the target, the retry.

A rollback commit restores one path to its content at an earlier commit. Its message names
the service and the short shas on one line, gives the reason, and ends with trailers a
later rollback reads to tell that the newest change to the path is itself a rollback:

    rollback(checkout): restore k8s/overlays/prod to 1a2b3c4 (was 5d6e7f8)

    Reason: error budget: TriggerCriticalRollback (critical)

    Rollback-Id: 01J...
    Rollback-Of: <full sha of the newest commit that changed the path>
    Rollback-To: <full sha whose content is restored>
    Alert-Fingerprint: 4f1e...
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from receiver.act.base import RollbackJob, TargetFacts
from receiver.act.polling import Pacing
from receiver.errors import ActionError
from receiver.secrets import Secret
from receiver.state.memory import PastRollback

STAGE = "gitops"
TRAILER_ID = "Rollback-Id"
TRAILER_OF = "Rollback-Of"
TRAILER_TO = "Rollback-To"
TRAILER_FINGERPRINT = "Alert-Fingerprint"

# How many commits that touched the path are read to choose a target (one API page).
HISTORY_DEPTH = 30
# A restore that lost a race is rebuilt on the new head until the deadline or the attempts
# run out, after a random pause of at least REBUILD_PAUSE_SECONDS (the range grows per attempt).
PUSH_DEADLINE_SECONDS = 60.0
PUSH_ATTEMPTS = 30
REBUILD_PAUSE_SECONDS = 0.05
INSPECT_TIMEOUT_SECONDS = 3  # inspect runs in the webhook request

CACHE_ENTRIES = 4096  # entries of a provider's cache (branch heads, path histories)
T = TypeVar("T")

_TRAILER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):\s*(.*?)\s*$")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_SHA_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class GitOpsOptions:
    """What both GitOps providers are built with: where to restore, how, how hard to try."""

    repo: str  # owner/name (GitHub provider) or a git URL (git provider)
    path: str
    branch: str = "main"
    token: Secret = field(default_factory=lambda: Secret("GITOPS_TOKEN"))
    pull_request: bool = False  # GITOPS_MODE=pull-request
    push_attempts: int = 0  # 0: PUSH_ATTEMPTS
    inspect_timeout: int = INSPECT_TIMEOUT_SECONDS
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic  # the push deadline's


@dataclass(frozen=True)
class PathCommit:
    """One commit that changed the rollback path, newest first in a history list."""

    sha: str
    parents: tuple[str, ...]
    message: str
    committed_at: float  # epoch seconds (committer date)


@dataclass(frozen=True)
class RestorePlan:
    """What a GitOps rollback restores: the path's newest change and the commit to restore."""

    rolled_back_from: str  # newest commit that changed the path
    target: str  # commit whose content of the path is restored
    last_change_at: float
    already_rolled_back: bool


def short(sha: str | None) -> str:
    """The 7-character abbreviation used in summaries."""
    return (sha or "")[:7]


def parse_trailers(message: str) -> dict[str, str]:
    """The `Key: value` trailers of a commit message's last paragraph."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return {}
    trailers: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER_LINE.match(line.strip())
        if not match:
            return {}  # not a trailer block
        trailers[match.group(1)] = match.group(2)
    return trailers


def is_rollback_commit(message: str) -> bool:
    """True when the commit was written by the receiver (it carries Rollback-Id and -To)."""
    trailers = parse_trailers(message)
    return TRAILER_ID in trailers and TRAILER_TO in trailers


def commit_message(job: RollbackJob, path: str, rolled_back_from: str, target: str) -> str:
    """The rollback commit's message: summary, reason and trailers (see the module doc)."""
    summary = (
        f"rollback({job.service}): restore {path} to {short(target)} "
        f"(was {short(rolled_back_from)})"
    )
    reason = " ".join(job.reason.split()) or "rollback"
    trailers = [
        f"{TRAILER_ID}: {job.rollback_id}",
        f"{TRAILER_OF}: {rolled_back_from}",
        f"{TRAILER_TO}: {target}",
        f"{TRAILER_FINGERPRINT}: {job.fingerprint or 'manual'}",
    ]
    return f"{summary}\n\nReason: {reason}\n\n" + "\n".join(trailers) + "\n"


def pull_request_branch(job: RollbackJob) -> str:
    """The branch a pull-request rollback is pushed to; unique per rollback id."""
    safe_service = re.sub(r"[^A-Za-z0-9._-]+", "-", job.service).strip("-.") or "service"
    safe_id = re.sub(r"[^A-Za-z0-9._-]+", "-", job.rollback_id).strip("-.")
    return f"rollback/{safe_service}-{safe_id}"


def plan_restore(
    job: RollbackJob, path: str, history: Sequence[PathCommit], stage: str = "gitops"
) -> RestorePlan:
    """Choose what to restore from the path's history (newest first).

    The default target is the parent of the newest commit that changed the path. When that
    parent's content of the path is a revision on the bad-revision list (the parent itself,
    or the older commit that wrote that content), the next older change is tried instead.
    `job.target_commit` overrides the choice.
    """
    if not history:
        raise ActionError(stage, f"no commit changed {path}; nothing to roll back to")
    newest = history[0]
    already = is_rollback_commit(newest.message) or newest.sha in job.rolled_back_to
    if job.target_commit:
        return RestorePlan(newest.sha, job.target_commit, newest.committed_at, already)
    bad = {revision.lower() for revision in job.bad_revisions}
    for index, commit in enumerate(history):
        if not commit.parents:
            break
        parent = commit.parents[0]
        content_of = history[index + 1].sha if index + 1 < len(history) else parent
        if _matches(parent, bad) or _matches(content_of, bad):
            continue
        return RestorePlan(newest.sha, parent, newest.committed_at, already)
    raise ActionError(
        stage,
        f"no earlier version of {path} to restore within the last {len(history)} changes "
        "that is not on the bad-revision list",
    )


def _matches(sha: str, bad: set[str]) -> bool:
    """True when `sha` equals a bad revision, full or abbreviated."""
    sha = sha.lower()
    return any(sha.startswith(b) for b in bad if _SHA.match(b))


def facts_from_plan(plan: RestorePlan, provider: str) -> TargetFacts:
    """The TargetFacts a GitOps provider reports for a plan."""
    return TargetFacts(
        current=plan.rolled_back_from,
        target=plan.target,
        last_change_at=plan.last_change_at,
        already_rolled_back=plan.already_rolled_back,
        details={"gitops_provider": provider},
    )


def record_plan(details: dict[str, object], plan: RestorePlan) -> None:
    """Write the plan into the action context before anything is changed."""
    details.setdefault("rolled_back_from", plan.rolled_back_from)
    details["target_commit"] = plan.target


def past_rollbacks_in(history: Sequence[PathCommit]) -> tuple[PastRollback, ...]:
    """The receiver's own rollback commits in a path's history (Rollback-Id and -Of trailers)."""
    found = []
    for commit in history:
        trailers = parse_trailers(commit.message)
        if TRAILER_ID in trailers and TRAILER_TO in trailers:
            found.append(
                PastRollback(
                    at=commit.committed_at,
                    rolled_back_from=trailers.get(TRAILER_OF) or None,
                    restored=commit.sha,
                    rollback_id=trailers[TRAILER_ID],
                )
            )
    return tuple(found)


@dataclass(frozen=True)
class PushRetry:
    """How a restore that lost a race is retried: rebuilt on the new head until a deadline.

    Between attempts a jittered pause spreads the racers out; the deadline
    (PUSH_DEADLINE_SECONDS) and `attempts` bound the whole, whichever comes first.
    """

    branch: str
    path: str
    attempts: int
    pacing: Pacing

    @classmethod
    def of(cls, options: GitOpsOptions, path: str) -> PushRetry:
        """The retry of `path`'s restore as the options say (attempts, clock and sleep)."""
        pacing = Pacing(REBUILD_PAUSE_SECONDS, options.clock, options.sleep)
        return cls(options.branch, path, options.push_attempts or PUSH_ATTEMPTS, pacing)

    def rounds(self, log: Callable[[str], None]) -> Iterator[int]:
        """Attempt numbers, 1 first; the caller stops iterating once its push landed."""
        deadline = self.pacing.deadline(PUSH_DEADLINE_SECONDS)
        for attempt in range(1, self.attempts + 1):
            yield attempt
            if attempt == self.attempts or deadline.passed():
                return
            log(
                f"branch {self.branch} moved while restoring {self.path} "
                f"(attempt {attempt} of {self.attempts}); rebuilding on the new head"
            )
            jitter = REBUILD_PAUSE_SECONDS + min(0.1 * attempt, 1.0)
            deadline.wait(random.uniform(REBUILD_PAUSE_SECONDS, jitter))

    def kept_moving(self, rejection: str, attempts: int, details: dict[str, Any]) -> ActionError:
        """The failure of a restore that lost every race: nothing was pushed."""
        return ActionError(
            STAGE,
            f"branch {self.branch} kept moving: {rejection} {attempts} times; nothing was pushed",
            dict(details),
        )

    def path_changed(self, details: dict[str, Any]) -> ActionError:
        """The failure when someone else changed the path since the plan: never restored over."""
        return ActionError(
            STAGE,
            f"{self.path} changed on {self.branch} since the rollback was planned; "
            "not restoring over that change",
            dict(details),
        )


class BoundedCache(Generic[T]):
    """A thread-safe least-recently-used map with a bounded number of entries."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._entries = entries
        self._data: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> T | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value: T) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def fetched_head(clone: Path, ref: str) -> str | None:
    """A fetched ref's sha from a bare clone's ref files (no git process), if found there."""
    for name in (ref, "packed-refs"):  # a loose ref wins over a packed one
        try:
            lines = (clone / name).read_text(encoding="ascii").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            sha, _, named = line.strip().partition(" ")
            if named in ("", ref) and _SHA_LINE.match(sha):
                return sha
    return None
