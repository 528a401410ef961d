"""What the git and GitHub provider tests share: the seeded repo, the job, a recording sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from receiver.act.base import ActionContext, RollbackJob
from receiver.act.gitops_common import parse_trailers
from receiver.config import GitOpsTarget, ServiceTarget
from tests.fake_time import Sleeps
from tests.fakes import BareRepo

PATH = "k8s/overlays/prod"
__all__ = [
    "PATH",
    "Sleeps",
    "all_at_once",
    "commit_of",
    "ctx",
    "each_restored_only_its_folder",
    "gitops_job",
    "seed_folders",
    "seed_manifests",
]


def seed_manifests(path: Path) -> BareRepo:
    """A gitops repo: v1, v2, v3 of the app's manifests, with unrelated commits between."""
    bare = BareRepo.create(path)
    day = time.time() - 86400
    bare.commit_files(
        {f"{PATH}/deploy.yaml": "image: app:v1", "README.md": "gitops"}, "v1", when=day
    )
    bare.commit_files(
        {f"{PATH}/deploy.yaml": "image: app:v2", f"{PATH}/old.yaml": "kind: ConfigMap"},
        "v2",
        when=day + 60,
    )
    bare.commit_files({"other/app.yaml": "image: other:v9"}, "unrelated", when=day + 120)
    bare.commit_files(
        {
            f"{PATH}/deploy.yaml": "image: app:v3",
            f"{PATH}/old.yaml": None,
            f"{PATH}/new.yaml": "kind: Secret",
        },
        "v3",
        when=day + 180,
    )
    bare.commit_files({"other/app.yaml": "image: other:v10"}, "unrelated 2", when=day + 240)
    return bare


def seed_folders(path: Path, folders: list[str]) -> BareRepo:
    """Each folder at v1 then v2 (the change to blame), with an unrelated commit between."""
    bare = BareRepo.create(path)
    day = time.time() - 86400
    bare.commit_files({f"{f}/deploy.yaml": "image: v1" for f in folders}, "v1", when=day)
    bare.commit_files({"README.md": "gitops"}, "unrelated", when=day + 60)
    bare.commit_files({f"{f}/deploy.yaml": "image: v2" for f in folders}, "v2", when=day + 120)
    return bare


def gitops_job(repo: str, **changes: Any) -> RollbackJob:
    """The rollback job of service `checkout` restoring PATH in `repo`."""
    base = RollbackJob(
        rollback_id="rb-0001",
        service="checkout",
        namespace="production",
        tier="critical",
        target=ServiceTarget("checkout", "production", GitOpsTarget(repo, PATH, "main"), None),
        mode="gitops",
        reason="error budget 85% consumed",
        fingerprint="4f1e2d3c",
    )
    return replace(base, **changes)


def ctx() -> ActionContext:
    """An action context whose lock check always passes."""
    return ActionContext(ensure_owned=lambda: None)


def commit_of(repo: BareRepo, message: str) -> str:
    """The sha of the commit on main with exactly this message."""
    for sha in repo.git("rev-list", "main").splitlines():
        if repo.message(sha) == message:
            return sha
    raise AssertionError(message)


def all_at_once(folders: list[str], rollback: Callable[[int, str], str]) -> dict[str, str]:
    """Run `rollback(n, folder)` for every folder, each in its own thread; the commits made."""
    pushed: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(n: int, folder: str) -> None:
        try:
            pushed[folder] = rollback(n, folder)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, f)) for n, f in enumerate(folders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return pushed


def each_restored_only_its_folder(
    repo: BareRepo, base: str, pushed: dict[str, str], folders: list[str]
) -> None:
    """One rollback commit per folder since `base`, each restoring v1 of its folder only."""
    assert sorted(pushed) == folders
    head = repo.head() or ""
    assert len(repo.git("rev-list", f"{base}..{head}").split()) == len(folders)
    for folder in folders:
        assert repo.read(head, f"{folder}/deploy.yaml") == "image: v1"
        sha = pushed[folder]
        assert repo.changed_paths(sha) == [f"{folder}/deploy.yaml"]  # only its own path
        assert parse_trailers(repo.message(sha))["Rollback-Id"].startswith("rb-")
