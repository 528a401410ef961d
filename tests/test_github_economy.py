"""The GitHub provider's request economy and write serialisation, against the fake GitHub."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from receiver.act.base import ActionContext
from receiver.act.github_client import BUDGET, LOW_REMAINING
from receiver.act.gitops_common import GitOpsOptions
from receiver.act.gitops_github import HISTORIES, GitHubRevert
from receiver.act.shared_reads import delivery_scope
from receiver.config import Secret
from receiver.metrics import GITHUB_RATELIMIT_REMAINING
from tests.fakes.github_api import FakeGitHub, running_github
from tests.gitops_support import (
    all_at_once,
    each_restored_only_its_folder,
    gitops_job,
    seed_folders,
)

TOKEN = "ghp_economy_token"
DEEP = "k8s/apps/checkout/overlays/prod/eu-west-1"


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    HISTORIES.clear()
    yield
    HISTORIES.clear()
    BUDGET.remaining = None


def provider(github: FakeGitHub, path: str) -> GitHubRevert:
    options = GitOpsOptions("acme/gitops", path, "main", Secret("GITOPS_TOKEN", TOKEN))
    return GitHubRevert(options, api_url=github.base_url)


def calls(github: FakeGitHub) -> list[str]:
    return [f"{c.method} {c.path}" for c in github.faults.calls]


def test_a_rollback_of_a_deep_path_makes_at_most_8_requests(tmp_path: Path) -> None:
    repo = seed_folders(tmp_path / "g.git", [DEEP])
    with running_github(repo, "acme/gitops", TOKEN) as github:
        action = provider(github, DEEP)
        job = replace(gitops_job("acme/gitops"), rollback_id="rb-deep")
        with delivery_scope():
            facts = action.inspect(job)
        context = ActionContext(ensure_owned=lambda: None)
        action.execute(job, context)
        made = calls(github)
    assert facts.current and facts.target
    assert len(made) <= 8, made
    assert repo.read(repo.head() or "", f"{DEEP}/deploy.yaml") == "image: v1"
    assert sum("/git/trees/" in c and c.startswith("GET") for c in made) == 2  # no tree walk


def test_facts_are_cached_by_branch_head_and_a_moved_head_invalidates(tmp_path: Path) -> None:
    folders = [f"k8s/svc{n}" for n in range(5)]
    repo = seed_folders(tmp_path / "g.git", folders)
    with running_github(repo, "acme/gitops", TOKEN) as github:
        job = gitops_job("acme/gitops")

        def one_delivery() -> int:
            before = len(github.faults.calls)
            with delivery_scope():
                for folder in folders:
                    provider(github, folder).inspect(job)
            return len(github.faults.calls) - before

        cold, warm = one_delivery(), one_delivery()
        repo.commit_files({"k8s/svc0/deploy.yaml": "image: v3"}, "v3")
        moved = one_delivery()
    assert cold == 1 + len(folders)  # one head read per repo + branch, one history per path
    assert warm == 1  # the head did not move: only the head is read
    assert moved == 1 + len(folders)


def test_ten_concurrent_rollbacks_of_ten_paths_in_one_repo_all_complete(tmp_path: Path) -> None:
    folders = [f"k8s/svc{n}" for n in range(10)]
    repo = seed_folders(tmp_path / "g.git", folders)
    base = repo.head() or ""
    with running_github(repo, "acme/gitops", TOKEN) as github:
        start = threading.Barrier(len(folders))

        def rollback(n: int, folder: str) -> str:
            action = provider(github, folder)
            job = replace(gitops_job("acme/gitops"), rollback_id=f"rb-{n}")
            context = ActionContext(ensure_owned=lambda: None)
            with delivery_scope():
                action.inspect(job)
            start.wait(10)
            action.execute(job, context)
            return str(context.details["revert_commit"])

        pushed = all_at_once(folders, rollback)
    each_restored_only_its_folder(repo, base, pushed, folders)


def test_a_path_changed_by_someone_else_meanwhile_is_not_restored_over(tmp_path: Path) -> None:
    repo = seed_folders(tmp_path / "g.git", ["k8s/svc0"])
    with running_github(repo, "acme/gitops", TOKEN) as github:
        github.race_push({"k8s/svc0/deploy.yaml": "image: hotfix"}, times=1)
        action = provider(github, "k8s/svc0")
        with pytest.raises(Exception) as caught:
            action.execute(gitops_job("acme/gitops"), ActionContext(ensure_owned=lambda: None))
    assert "changed on main since the rollback was planned" in str(caught.value)
    assert repo.read(repo.head() or "", "k8s/svc0/deploy.yaml") == "image: hotfix-1"


def test_the_rate_limit_budget_is_read_from_every_answer(tmp_path: Path) -> None:
    repo = seed_folders(tmp_path / "g.git", ["k8s/svc0"])
    with running_github(repo, "acme/gitops", TOKEN) as github:
        github.rate_remaining = LOW_REMAINING - 1
        action = provider(github, "k8s/svc0")
        with delivery_scope():
            action.inspect(gitops_job("acme/gitops"))
        assert BUDGET.low and GITHUB_RATELIMIT_REMAINING._value.get() == LOW_REMAINING - 1
        before = len(github.faults.calls)
        with delivery_scope():  # low budget: the known head is reused, the history is cached
            action.inspect(gitops_job("acme/gitops"))
        optional = len(github.faults.calls) - before
        context = ActionContext(ensure_owned=lambda: None)
        action.execute(gitops_job("acme/gitops"), context)  # writes are never dropped
    assert optional == 0
    assert repo.head() == context.details["revert_commit"]
