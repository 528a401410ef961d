"""What the git and GitHub provider tests share: the seeded repo, the job, a recording sleep."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from receiver.act.base import ActionContext, RollbackJob
from receiver.config import GitOpsTarget, ServiceTarget
from tests.fake_time import Sleeps
from tests.fakes import BareRepo

PATH = "k8s/overlays/prod"
__all__ = ["PATH", "Sleeps", "commit_of", "ctx", "gitops_job", "seed_folders", "seed_manifests"]


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
