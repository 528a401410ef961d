"""Which actions a rollback runs, in order, for a service's target and the rollback mode.

- `gitops`: the git action (GitHub API or git CLI), plus an Argo CD watch step that only
  validates, when an Argo CD application is configured.
- `argocd`: the Argo CD rollback.
- `both`: the git action, then the Argo CD refresh/sync step.

A mode whose pieces are not configured raises `NoTarget` (the pipeline skips with
`no_target`).
"""

from __future__ import annotations

import re
from pathlib import Path

from receiver.act.argocd import ArgoCDRollback, ArgoCDSync, ArgoCDWatch
from receiver.act.base import RollbackAction
from receiver.act.gitops_common import GitOpsOptions
from receiver.act.gitops_git import GitRevert
from receiver.clients.argocd import ArgoCDClient
from receiver.config import Settings, is_github_slug
from receiver.decide.targets import GitOpsTarget, ServiceTarget

MODES = ("gitops", "argocd", "both")
_GITHUB_URL = re.compile(r"^https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


class NoTarget(LookupError):
    """The mode needs a GitOps repo/path or an Argo CD app/server the service does not have.

    A LookupError, so a caller that only catches lookups still does not roll back.
    """


def gitops_provider(settings: Settings, repo: str) -> str:
    """`github` or `git` for a repository, following GITOPS_PROVIDER (auto: owner/name)."""
    if settings.gitops_provider != "auto":
        return settings.gitops_provider
    return "github" if is_github_slug(repo) else "git"


def github_slug(repo: str) -> str:
    """`owner/name` for the GitHub provider, from a slug or a github.com URL."""
    if is_github_slug(repo):
        return repo
    match = _GITHUB_URL.match(repo)
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    raise NoTarget(f"GITOPS_PROVIDER=github needs GITOPS_REPO as owner/name, not {repo!r}")


def git_action(
    settings: Settings, gitops: GitOpsTarget, cache_dir: Path | str | None = None
) -> RollbackAction:
    """The GitOps action for a target: GitHub API or git CLI."""
    github = gitops_provider(settings, gitops.repo) == "github"
    options = GitOpsOptions(
        repo=github_slug(gitops.repo) if github else gitops.repo,
        path=gitops.path,
        branch=gitops.branch,
        token=settings.gitops_token,
        pull_request=settings.gitops_mode == "pull-request",
    )
    if github:  # PyGithub is imported on first use: a git-provider worker is 15 MB smaller
        from receiver.act.gitops_github import GitHubRevert

        return GitHubRevert(options, api_url=settings.github_api_url)
    return GitRevert(options, cache_dir=cache_dir)


def argocd_client(settings: Settings) -> ArgoCDClient:
    """An Argo CD client from ARGOCD_* settings (session tokens are shared per server+account)."""
    if not settings.argocd_server:
        raise NoTarget("ARGOCD_SERVER is not set")
    return ArgoCDClient(
        settings.argocd_server,
        username=settings.argocd_username,
        password=settings.argocd_password,
        token=settings.argocd_token,
        plaintext=settings.argocd_plaintext,
        insecure=settings.argocd_insecure,
    )


def build_actions(
    settings: Settings, target: ServiceTarget, mode: str, cache_dir: Path | str | None = None
) -> list[RollbackAction]:
    """The ordered actions of one rollback; raises NoTarget when the mode lacks its pieces."""
    if mode not in MODES:
        raise NoTarget(f"unknown rollback mode {mode!r}")
    has_argocd = bool(target.argocd_app and settings.argocd_server)
    timeout = float(settings.validation_timeout_seconds)
    if mode == "argocd":
        if not has_argocd:
            raise NoTarget(
                f"mode argocd needs ARGOCD_SERVER and an Argo CD app for {target.service}"
            )
        assert target.argocd_app is not None
        return [
            ArgoCDRollback(
                argocd_client(settings),
                target.argocd_app,
                disable_autosync=settings.argocd_disable_autosync,
                validation_timeout=timeout,
            )
        ]
    if target.gitops is None:
        raise NoTarget(f"mode {mode} needs GITOPS_REPO and GITOPS_PATH for {target.service}")
    actions = [git_action(settings, target.gitops, cache_dir or settings.gitops_cache_dir)]
    if mode == "both":
        if not has_argocd:
            raise NoTarget(f"mode both needs ARGOCD_SERVER and an Argo CD app for {target.service}")
        assert target.argocd_app is not None
        actions.append(
            ArgoCDSync(argocd_client(settings), target.argocd_app, validation_timeout=timeout)
        )
    elif has_argocd:
        assert target.argocd_app is not None
        actions.append(
            ArgoCDWatch(argocd_client(settings), target.argocd_app, validation_timeout=timeout)
        )
    return actions
