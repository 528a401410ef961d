"""The git provider's clone is used by one rollback at a time, across OS processes too.

Gunicorn's workers and `monitor` share the default clone directory; these tests run real
processes (spawned) and a lock held from the test itself against one local bare repository.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from receiver.act.base import ActionContext
from receiver.act.gitops_common import GitOpsOptions, RestorePlan
from receiver.act.gitops_git import GitRevert
from receiver.config import Secret
from receiver.errors import ActionError
from tests.fake_time import Sleeps
from tests.gitops_support import (
    PATH,
    ctx,
    each_restored_only_its_folder,
    gitops_job,
    seed_folders,
    seed_manifests,
)

FOLDERS = ["k8s/svc0", "k8s/svc1"]
RENDEZVOUS_SECONDS = 20.0  # a safety net: every wait below ends long before when the code is right


def options(url: str, path: str = PATH) -> GitOpsOptions:
    return GitOpsOptions(url, path, "main", Secret("GITOPS_TOKEN", None), sleep=Sleeps())


class Watch:
    """Counts the rollbacks inside one clone; the first one in stays until the other arrived.

    "Arrived" is set by a process inside the clone, or waiting for it (the provider's log line
    "waiting for the git clone"), so the first one in holds the clone until the other one has
    tried to take it: on code without a cross-process lock both are then inside at once.
    """

    def __init__(self, occupants: Any, peak: Any, mine: Any, theirs: Any) -> None:
        self.occupants, self.peak, self.mine, self.theirs = occupants, peak, mine, theirs

    def enter(self) -> None:
        with self.occupants.get_lock():
            self.occupants.value += 1
            self.peak.value = max(self.peak.value, self.occupants.value)
        self.mine.set()
        if not self.theirs.wait(RENDEZVOUS_SECONDS):
            raise AssertionError("the other process never reached the clone")

    def leave(self) -> None:
        with self.occupants.get_lock():
            self.occupants.value -= 1


class WatchedRevert(GitRevert):
    """A GitRevert that reports its time inside the clone: from its fetch to its landed push."""

    watch: Watch
    inside = False

    def _fetch(self, timeout: float) -> None:
        if not self.inside:
            self.inside = True
            self.watch.enter()
        super()._fetch(timeout)

    def _push_once(
        self, job: Any, ctx: ActionContext, plan: RestorePlan, head: str, planned: str
    ) -> bool:
        landed = super()._push_once(job, ctx, plan, head, planned)
        if landed:  # still inside the clone's lock: leave before it is released
            self.inside = False
            self.watch.leave()
        return landed


class Arrived(logging.Handler):
    """Sets an event when the provider logs that it waits for the clone."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for the git clone" in record.getMessage():
            self.event.set()


def roll_back_in_a_process(
    url: str, cache: str, n: int, start: Any, watch: Watch, results: Any
) -> None:
    """One OS process: restore FOLDERS[n] through the shared clone directory."""
    logger = logging.getLogger("receiver.gitops")
    logger.setLevel(logging.INFO)
    logger.addHandler(Arrived(watch.mine))
    revert = WatchedRevert(options(url, FOLDERS[n]), cache_dir=cache)
    revert.watch = watch
    context = ctx()
    start.wait(RENDEZVOUS_SECONDS)
    try:
        revert.execute(gitops_job(url, service=f"svc{n}", rollback_id=f"rb-{n}"), context)
        results.put((FOLDERS[n], str(context.details["revert_commit"])))
    except Exception as exc:
        results.put((FOLDERS[n], f"failed: {exc}"))


def test_two_processes_rolling_back_two_paths_through_one_clone_take_turns(
    tmp_path: Path,
) -> None:
    origin = seed_folders(tmp_path / "origin.git", FOLDERS)
    base = origin.head() or ""
    spawn = mp.get_context("spawn")
    occupants, peak = spawn.Value("i", 0), spawn.Value("i", 0)
    arrived = [spawn.Event(), spawn.Event()]
    start, results = spawn.Barrier(2), spawn.Queue()
    procs = [
        spawn.Process(
            target=roll_back_in_a_process,
            args=(
                origin.url,
                str(tmp_path / "cache"),  # the same clone directory for both
                n,
                start,
                Watch(occupants, peak, arrived[n], arrived[1 - n]),
                results,
            ),
        )
        for n in range(2)
    ]
    for proc in procs:
        proc.start()
    try:
        pushed = dict(results.get(timeout=60) for _ in procs)
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    assert not [sha for sha in pushed.values() if sha.startswith("failed")], pushed
    assert peak.value == 1  # never two processes inside the clone at once
    each_restored_only_its_folder(origin, base, pushed, FOLDERS)


@contextmanager
def held_from_outside(lock_file: Path) -> Iterator[None]:
    """Hold the clone's lock file as another process would (its own open file, flock)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def is_free(lock_file: Path) -> bool:
    with open(lock_file, "rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


@pytest.mark.parametrize("use", ["execute", "inspect"])
def test_a_clone_held_past_the_deadline_fails_clearly_and_pushes_nothing(
    tmp_path: Path, use: str
) -> None:
    origin = seed_manifests(tmp_path / "origin.git")
    before = origin.head()
    revert = GitRevert(options(origin.url), cache_dir=tmp_path / "cache", clone_wait=0.3)
    began = time.monotonic()
    with held_from_outside(revert.clone_lock.path), pytest.raises(ActionError) as failure:
        if use == "execute":
            revert.execute(gitops_job("x"), ctx())
        else:
            revert.inspect(gitops_job("x"))
    assert time.monotonic() - began < 5
    assert failure.value.stage == "gitops"
    message = failure.value.message
    assert str(revert.clone) in message
    assert "held by another process" in message
    assert "0.3 s" in message
    assert origin.head() == before
    revert.execute(gitops_job("x"), ctx())  # free again once the other holder let go
    assert origin.head() != before


def test_a_failed_rollback_leaves_the_clone_free(tmp_path: Path) -> None:
    origin = seed_manifests(tmp_path / "origin.git")
    missing = GitOpsOptions(origin.url, PATH, "release", Secret("GITOPS_TOKEN", None))
    revert = GitRevert(missing, cache_dir=tmp_path / "cache", clone_wait=0.3)
    with pytest.raises(ActionError, match="release"):
        revert.execute(gitops_job("x"), ctx())
    assert is_free(revert.clone_lock.path)
    with pytest.raises(ActionError, match="release"):  # the in-process lock was let go too
        revert.inspect(gitops_job("x"))
    assert is_free(revert.clone_lock.path)


def plant_and_die(clone: str, stale: list[str]) -> None:
    """A process killed while it holds the clone: git's lock files in place, its pid written."""
    from receiver.act.clone_lock import CloneLock

    with CloneLock(Path(clone), "origin").held(5):
        for path in stale:
            Path(path).write_text("left by a killed git\n")
        os.kill(os.getpid(), 9)


def stale_git_locks(revert: GitRevert) -> list[Path]:
    refs = sorted(p for p in (revert.clone / "refs").rglob("*") if p.is_file())
    assert refs, "the clone fetched no ref"
    stale = [revert.clone / "packed-refs.lock", revert.clone / "config.lock"]
    return stale + [ref.with_name(ref.name + ".lock") for ref in refs]


def test_git_lock_files_left_by_a_killed_process_are_cleared_once_the_clone_is_ours(
    tmp_path: Path,
) -> None:
    """A worker killed mid-fetch leaves git's own `*.lock` files; the next use clears them."""
    origin = seed_manifests(tmp_path / "origin.git")
    revert = GitRevert(options(origin.url), cache_dir=tmp_path / "cache", clone_wait=0.3)
    revert.inspect(gitops_job("x"))  # the clone exists and has fetched once
    stale = stale_git_locks(revert)
    killed = mp.get_context("spawn").Process(
        target=plant_and_die,
        args=(str(revert.clone), [str(p) for p in stale]),
    )
    killed.start()
    killed.join(RENDEZVOUS_SECONDS)
    assert killed.exitcode == -9, "the holder was not killed inside the clone"
    assert revert.clone_lock.path.read_text().strip() == str(killed.pid)  # what it left
    assert all(p.exists() for p in stale)
    origin.commit_files({"other/app.yaml": "image: other:v11"}, "moved on")  # the fetch updates
    before = origin.head()
    revert.execute(gitops_job("x"), ctx())
    assert origin.head() != before
    assert not [p for p in stale if p.exists()]


def test_a_use_that_raised_makes_the_next_holder_clear_git_lock_files(tmp_path: Path) -> None:
    """A git killed at its timeout raises out of the block; the files it left are cleared."""
    origin = seed_manifests(tmp_path / "origin.git")
    revert = GitRevert(options(origin.url), cache_dir=tmp_path / "cache", clone_wait=0.3)
    revert.inspect(gitops_job("x"))
    stale = stale_git_locks(revert)
    with pytest.raises(RuntimeError), revert.clone_lock.held(1):
        for path in stale:
            path.write_text("left by a git killed at its timeout\n")
        raise RuntimeError("git fetch timed out after 10 s")
    revert.inspect(gitops_job("x"))
    assert not [p for p in stale if p.exists()]


def test_after_a_clean_use_the_next_holder_does_not_walk_the_clone(tmp_path: Path) -> None:
    """A clean release writes `free`: the next holder skips the search (and leaves a lock file
    it did not find the receiver's to whoever owns it)."""
    origin = seed_manifests(tmp_path / "origin.git")
    revert = GitRevert(options(origin.url), cache_dir=tmp_path / "cache", clone_wait=0.3)
    revert.inspect(gitops_job("x"))
    assert revert.clone_lock.path.read_text().strip() == "free"
    outside = revert.clone / "refs" / "outside.lock"  # another tool's git, not the receiver's
    outside.write_text("held by an operator's git\n")
    revert.inspect(gitops_job("x"))
    assert outside.exists()


def test_a_lock_file_removed_between_uses_is_opened_again_and_still_excludes(
    tmp_path: Path,
) -> None:
    """The lock file stays open between uses; one a /tmp cleaner removed is not trusted, so
    another process holding the file now at the path still keeps this one out."""
    origin = seed_manifests(tmp_path / "origin.git")
    revert = GitRevert(options(origin.url), cache_dir=tmp_path / "cache", clone_wait=0.3)
    revert.inspect(gitops_job("x"))  # the lock file is open in this process now
    revert.clone_lock.path.unlink()
    with held_from_outside(revert.clone_lock.path), pytest.raises(ActionError) as failure:
        revert.inspect(gitops_job("x"))
    assert "held by another process" in failure.value.message
    revert.inspect(gitops_job("x"))  # free again once the other holder let go


def test_a_forked_process_does_not_share_its_parents_hold_on_the_clone(tmp_path: Path) -> None:
    """A descriptor inherited through fork shares the parent's flock: the child opens its own."""
    origin = seed_manifests(tmp_path / "origin.git")
    revert = GitRevert(options(origin.url), cache_dir=tmp_path / "cache", clone_wait=0.3)
    revert.inspect(gitops_job("x"))  # the lock file is open in this process now
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    answer_r, answer_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait until the parent holds the clone, then try to take it
        code = b"?"
        try:
            os.write(ready_w, b"r")
            os.read(go_r, 1)
            with revert.clone_lock.held(0.3):
                code = b"taken"
        except ActionError:
            code = b"busy"
        finally:
            os.write(answer_w, code)
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"r"
        with revert.clone_lock.held(5):
            os.write(go_w, b"g")
            answer = os.read(answer_r, 16)
    finally:
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, go_r, go_w, answer_r, answer_w):
            os.close(fd)
    assert answer == b"busy"
