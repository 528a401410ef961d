"""The git provider: a cached bare clone of a real bare repository over file://."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from receiver.act.base import ActionContext, RollbackJob
from receiver.act.gitops_common import GitOpsOptions, is_rollback_commit, parse_trailers
from receiver.act.gitops_git import GitRevert, redact
from receiver.act.shared_reads import delivery_scope
from receiver.config import Secret
from receiver.errors import ActionError, LockLost
from tests.fake_time import FakeClock
from tests.fakes import BareRepo
from tests.gitops_support import (
    PATH,
    Sleeps,
    all_at_once,
    commit_of,
    ctx,
    each_restored_only_its_folder,
    gitops_job,
    seed_folders,
    seed_manifests,
)


@pytest.fixture
def origin(tmp_path: Path) -> BareRepo:
    return seed_manifests(tmp_path / "origin.git")


def options(url: str, token: str | None = None, **changes: Any) -> GitOpsOptions:
    changes.setdefault("sleep", Sleeps())
    path, branch = changes.pop("path", PATH), changes.pop("branch", "main")
    return GitOpsOptions(url, path, branch, Secret("GITOPS_TOKEN", token), **changes)


def action(origin: BareRepo, tmp_path: Path, **changes: Any) -> GitRevert:
    return GitRevert(options(origin.url, **changes), cache_dir=tmp_path / "cache")


def job(**changes: Any) -> RollbackJob:
    return gitops_job("x", **changes)


def test_a_rollback_pushes_one_commit_restoring_only_the_path(
    origin: BareRepo, tmp_path: Path
) -> None:
    before = origin.head()
    context = ctx()
    action(origin, tmp_path).execute(job(), context)
    head = origin.head() or ""
    assert head == context.details["revert_commit"]
    assert origin.parents(head) == [before]
    assert origin.files(head, PATH) == origin.files(commit_of(origin, "v2"), PATH)
    assert origin.read(head, "other/app.yaml") == "image: other:v10"
    assert all(p.startswith(PATH + "/") for p in origin.changed_paths(head))
    trailers = parse_trailers(origin.message(head))
    assert trailers["Rollback-Of"] == commit_of(origin, "v3")
    assert trailers["Rollback-To"] == context.details["target_commit"]
    assert trailers["Rollback-Id"] == "rb-0001"


def test_inspect_reads_the_history_of_the_path(origin: BareRepo, tmp_path: Path) -> None:
    facts = action(origin, tmp_path).inspect(job())
    v3 = commit_of(origin, "v3")
    assert facts.current == v3
    assert facts.target == commit_of(origin, "unrelated")  # the parent of v3: v2's content
    assert facts.last_change_at == float(origin.git("log", "-1", "--format=%ct", v3))
    assert not facts.already_rolled_back


def test_a_second_automatic_rollback_sees_the_first(origin: BareRepo, tmp_path: Path) -> None:
    action(origin, tmp_path).execute(job(), ctx())
    facts = action(origin, tmp_path).inspect(job(rollback_id="rb-0002"))
    assert facts.already_rolled_back


def test_bad_revisions_are_never_restored(origin: BareRepo, tmp_path: Path) -> None:
    v2 = commit_of(origin, "v2")
    context = ctx()
    action(origin, tmp_path).execute(job(bad_revisions=frozenset({v2})), context)
    assert context.details["target_commit"] == commit_of(origin, "v1")
    assert origin.read(origin.head() or "", f"{PATH}/deploy.yaml") == "image: app:v1"


def test_target_commit_overrides_the_choice(origin: BareRepo, tmp_path: Path) -> None:
    v1 = commit_of(origin, "v1")
    context = ctx()
    action(origin, tmp_path).execute(job(target_commit=v1[:8]), context)
    assert context.details["target_commit"] == v1


class RacingRevert(GitRevert):
    """Someone pushes to the branch just before each of our first `races` pushes."""

    races = 1
    pushes = 0
    changed = "other/app.yaml"  # the file their pushes change

    def _push(self, sha: str, branch: str, timeout: float) -> bool:
        self.pushes += 1
        if self.pushes <= self.races:
            assert isinstance(self.origin, BareRepo)
            self.origin.commit_files(
                {self.changed: f"race {self.pushes}"}, f"concurrent {self.pushes}"
            )
        return super()._push(sha, branch, timeout)

    origin: object = None


def racing(origin: BareRepo, tmp_path: Path, races: int, **changes: Any) -> RacingRevert:
    revert = RacingRevert(options(origin.url, **changes), cache_dir=tmp_path / "cache")
    revert.origin = origin
    revert.races = races
    return revert


def test_a_rejected_push_is_retried_on_the_new_head(origin: BareRepo, tmp_path: Path) -> None:
    revert = racing(origin, tmp_path, races=1)
    context = ctx()
    revert.execute(job(), context)
    head = origin.head() or ""
    assert context.details["revert_commit"] == head
    assert origin.message(origin.parents(head)[0]) == "concurrent 1"
    assert origin.read(head, "other/app.yaml") == "race 1"
    assert revert.pushes == 2


def test_pushes_that_keep_losing_fail_after_bounded_attempts(
    origin: BareRepo, tmp_path: Path
) -> None:
    revert = racing(origin, tmp_path, races=99, push_attempts=3)
    with pytest.raises(ActionError) as caught:
        revert.execute(job(), ctx())
    assert "non-fast-forward" in caught.value.message
    assert revert.pushes == 3
    assert origin.message(origin.head() or "") == "concurrent 3"


class SlowRemote(RacingRevert):
    """Each push takes 25 s of the fake clock."""

    clock: FakeClock

    def _push(self, sha: str, branch: str, timeout: float) -> bool:
        self.clock.now += 25.0
        return super()._push(sha, branch, timeout)


def test_a_branch_that_keeps_moving_is_rebuilt_on_until_the_deadline(
    origin: BareRepo, tmp_path: Path
) -> None:
    clock = FakeClock()
    revert = SlowRemote(
        options(origin.url, push_attempts=999, clock=clock, sleep=clock.sleep),
        cache_dir=tmp_path / "cache",
    )
    revert.origin, revert.races, revert.clock = origin, 99, clock
    with pytest.raises(ActionError) as caught:
        revert.execute(job(), ctx())
    assert "kept moving: push rejected as non-fast-forward 3 times" in caught.value.message
    assert revert.pushes == 3  # lost at 25 s and 50 s, before the 60 s deadline; at 75 s, past
    assert len(clock.sleeps) == 2 and sum(clock.sleeps) < 1.0  # short, jittered pauses
    assert not is_rollback_commit(origin.message(origin.head() or ""))


def test_a_concurrent_change_to_the_same_path_fails_the_rollback_and_is_kept(
    origin: BareRepo, tmp_path: Path
) -> None:
    revert = racing(origin, tmp_path, races=1)
    revert.changed = f"{PATH}/deploy.yaml"
    with pytest.raises(ActionError) as caught:
        revert.execute(job(), ctx())
    assert "changed on main since the rollback was planned" in caught.value.message
    assert revert.pushes == 1  # not rebuilt over their change
    head = origin.head() or ""
    assert origin.message(head) == "concurrent 1"
    assert origin.read(head, f"{PATH}/deploy.yaml") == "race 1"


class Lockstep:
    """Holds each push until every rollback still running is about to push: the worst race."""

    def __init__(self, parties: int) -> None:
        self.running = parties
        self.waiting = 0
        self.round = 0
        self.changed = threading.Condition()

    def arrive(self) -> None:
        with self.changed:
            round_ = self.round
            self.waiting += 1
            if self.waiting >= self.running:
                self._next_round()
            elif not self.changed.wait_for(lambda: self.round != round_, timeout=20):
                raise AssertionError("the other rollbacks never reached their push")

    def leave(self) -> None:
        with self.changed:
            self.running -= 1
            if self.waiting and self.waiting >= self.running:
                self._next_round()

    def _next_round(self) -> None:
        self.waiting = 0
        self.round += 1
        self.changed.notify_all()


class LockstepRevert(GitRevert):
    """Every push waits for its round of the shared lockstep."""

    lockstep: Lockstep

    def _push(self, sha: str, branch: str, timeout: float) -> bool:
        self.lockstep.arrive()
        return super()._push(sha, branch, timeout)


def test_ten_concurrent_rollbacks_of_ten_paths_on_one_branch_all_complete(tmp_path: Path) -> None:
    folders = [f"k8s/svc{n}" for n in range(10)]
    origin = seed_folders(tmp_path / "origin.git", folders)
    base = origin.head() or ""
    lockstep = Lockstep(len(folders))

    def rollback(n: int, folder: str) -> str:
        # Each in its own clone, as on separate replicas (in one process they queue on a lock).
        revert = LockstepRevert(options(origin.url, path=folder), cache_dir=tmp_path / f"c{n}")
        revert.lockstep = lockstep
        context = ctx()
        try:
            revert.execute(job(service=f"svc{n}", rollback_id=f"rb-{n}"), context)
        finally:
            lockstep.leave()
        return str(context.details["revert_commit"])

    each_restored_only_its_folder(origin, base, all_at_once(folders, rollback), folders)


def test_a_lost_lock_pushes_nothing(origin: BareRepo, tmp_path: Path) -> None:
    before = origin.head()

    def lost() -> None:
        raise LockLost("lost the lock of checkout: lease expired")

    with pytest.raises(LockLost):
        action(origin, tmp_path).execute(job(), ActionContext(ensure_owned=lost))
    assert origin.head() == before


def test_pull_request_mode_pushes_a_branch_and_leaves_main(
    origin: BareRepo, tmp_path: Path
) -> None:
    before = origin.head()
    context = ctx()
    action(origin, tmp_path, pull_request=True).execute(job(), context)
    assert origin.head() == before
    branch_head = origin.head("rollback/checkout-rb-0001")
    assert branch_head == context.details["revert_commit"]
    assert context.details["validated"] is False
    assert context.details["pull_request"] == "rollback/checkout-rb-0001"


def test_an_unreachable_remote_fails_without_leaking_the_token(tmp_path: Path) -> None:
    url = "https://deploy:urlpass123@127.0.0.1:9/acme/gitops.git"
    revert = GitRevert(options(url, "tok_s3cr3t"), cache_dir=tmp_path / "cache")
    with pytest.raises(ActionError) as caught:
        revert.inspect(job())
    assert caught.value.stage == "gitops"
    assert "urlpass123" not in caught.value.message
    assert "tok_s3cr3t" not in caught.value.message
    assert "127.0.0.1:9" in caught.value.message


def test_the_token_reaches_git_through_askpass_not_the_url(
    origin: BareRepo, tmp_path: Path
) -> None:
    revert = GitRevert(options(origin.url, "tok_s3cr3t"), cache_dir=tmp_path / "cache")
    revert.inspect(job())
    env = revert._env()
    assert "tok_s3cr3t" not in revert._git("config", "remote.origin.url", timeout=5)
    askpass = subprocess.run(
        [env["GIT_ASKPASS"], "Password for 'https://x@h': "],
        capture_output=True,
        text=True,
        env=env,
        timeout=5,
        check=True,
    )
    assert askpass.stdout.strip() == "tok_s3cr3t"


def test_redact_removes_userinfo_and_secrets() -> None:
    text = "fatal: unable to access 'https://user:pw@host/r.git/': token abc"
    assert redact(text, ("abc",)) == "fatal: unable to access 'https://***@host/r.git/': token ***"


def test_a_missing_branch_fails_with_a_clear_error(origin: BareRepo, tmp_path: Path) -> None:
    revert = GitRevert(options(origin.url, branch="release"), cache_dir=tmp_path / "cache")
    with pytest.raises(ActionError) as caught:
        revert.execute(job(), ctx())
    assert "release" in caught.value.message


def test_past_rollbacks_are_the_commits_with_the_receivers_trailers() -> None:
    from receiver.act.gitops_common import PathCommit, commit_message, past_rollbacks_in

    ours = commit_message(gitops_job("repo"), PATH, "b" * 40, "a" * 40)
    history = [
        PathCommit("c" * 40, ("b" * 40,), ours, 200.0),
        PathCommit("b" * 40, ("a" * 40,), "v3\n\nRollback-Id: hand-written", 100.0),
    ]
    (past,) = past_rollbacks_in(history)
    assert (past.rolled_back_from, past.restored, past.at) == ("b" * 40, "c" * 40, 200.0)
    assert past.rollback_id == "rb-0001"


def test_inspect_refuses_a_target_commit_the_repository_does_not_have(
    origin: BareRepo, tmp_path: Path
) -> None:
    with pytest.raises(ActionError) as caught:
        action(origin, tmp_path).inspect(job(target_commit="deadbeef"))
    assert caught.value.message.startswith("target commit deadbeef does not exist in ")
    v1 = commit_of(origin, "v1")
    facts = action(origin, tmp_path).inspect(job(target_commit=v1[:9]))
    assert facts.target == v1


class CountingRevert(GitRevert):
    """Counts the git commands it runs, by name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    def _git(self, *args: str, **kwargs: Any) -> str:
        self.commands.append(args[0])
        return super()._git(*args, **kwargs)


def test_the_path_history_is_read_once_per_fetched_head(origin: BareRepo, tmp_path: Path) -> None:
    """A repeat inspect at the same head runs no `git log`; a new commit is read, packed or not."""
    revert = CountingRevert(options(origin.url), cache_dir=tmp_path / "cache")
    first = revert.inspect(job())
    assert revert.inspect(job()) == first
    assert revert.commands.count("fetch") == 2 and revert.commands.count("log") == 1
    origin.commit_files({f"{PATH}/deploy.yaml": "image: app:v4"}, "v4")
    subprocess.run(["git", "--git-dir", str(revert.clone), "pack-refs", "--all"], check=True)
    assert not (revert.clone / revert.remote_ref).exists()  # only in packed-refs now
    newer = revert.inspect(job())
    assert newer.current == commit_of(origin, "v4") != first.current
    assert revert.commands.count("log") == 2
    revert.inspect(job())
    assert revert.commands.count("log") == 2


def test_the_alerts_of_one_delivery_share_one_fetch(origin: BareRepo, tmp_path: Path) -> None:
    """Inside a delivery each clone + branch is fetched once; outside one, every inspect fetches."""
    first, second = (CountingRevert(options(origin.url), cache_dir=tmp_path / "c") for _ in "ab")
    with delivery_scope():
        first.inspect(job())
        second.inspect(job(rollback_id="rb-0002"))
    assert first.commands.count("fetch") + second.commands.count("fetch") == 1
    first.inspect(job())
    assert first.commands.count("fetch") == 2
