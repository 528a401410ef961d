"""Which actions each rollback mode runs, and what missing configuration does."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.act.argocd import ArgoCDRollback, ArgoCDSync, ArgoCDWatch
from receiver.act.factory import NoTarget, build_actions, github_slug
from receiver.act.gitops_git import GitRevert
from receiver.act.gitops_github import GitHubRevert
from receiver.config import GitOpsTarget, ServiceTarget, Settings

ENV = {
    "GITOPS_REPO": "acme/gitops",
    "GITOPS_PATH": "k8s/overlays/prod",
    "GITOPS_TOKEN": "ghp_x",
    "ARGOCD_SERVER": "argocd.example:443",
    "ARGOCD_APP_NAME": "app-prod",
    "ARGOCD_TOKEN": "tok",
    "BLACKOUT_WINDOWS": "none",
}


def settings(**env: str) -> Settings:
    merged = {**ENV, **env}
    return Settings.from_env({k: v for k, v in merged.items() if v != ""})


def close(actions: list[object]) -> None:
    for action in actions:
        client = getattr(action, "client", None)
        if client is not None:
            client.close()


def kinds(s: Settings, mode: str, tmp_path: Path) -> list[type]:
    actions = build_actions(s, s.default_target(), mode, cache_dir=tmp_path)
    close(list(actions))
    return [type(a) for a in actions]


def test_mode_both_is_the_git_revert_then_the_argo_cd_sync(tmp_path: Path) -> None:
    assert kinds(settings(), "both", tmp_path) == [GitHubRevert, ArgoCDSync]


def test_mode_gitops_validates_through_argo_cd_when_an_app_is_configured(tmp_path: Path) -> None:
    assert kinds(settings(), "gitops", tmp_path) == [GitHubRevert, ArgoCDWatch]
    assert kinds(settings(ARGOCD_APP_NAME=""), "gitops", tmp_path) == [GitHubRevert]


def test_mode_argocd_is_the_argo_cd_rollback_alone(tmp_path: Path) -> None:
    assert kinds(settings(), "argocd", tmp_path) == [ArgoCDRollback]


def test_a_git_url_selects_the_git_provider_under_auto(tmp_path: Path) -> None:
    s = settings(GITOPS_REPO="https://git.example/acme/gitops.git")
    assert kinds(s, "gitops", tmp_path)[0] is GitRevert
    forced = settings(GITOPS_PROVIDER="git")
    assert kinds(forced, "gitops", tmp_path)[0] is GitRevert


def test_the_github_provider_accepts_a_github_url() -> None:
    assert github_slug("https://github.com/acme/gitops.git") == "acme/gitops"
    with pytest.raises(NoTarget):
        github_slug("ssh://git@git.example/acme/gitops.git")


def test_settings_reach_the_actions(tmp_path: Path) -> None:
    s = settings(
        GITOPS_MODE="pull-request",
        ARGOCD_DISABLE_AUTOSYNC="true",
        GITHUB_API_URL="https://ghe.example/api/v3",
        VALIDATION_TIMEOUT_SECONDS="42",
        ARGOCD_PLAINTEXT="true",
    )
    git, sync = build_actions(s, s.default_target(), "both", cache_dir=tmp_path)
    rollback = build_actions(s, s.default_target(), "argocd")[0]
    close([sync, rollback])
    assert isinstance(git, GitHubRevert) and git.pull_request is True
    assert git.api_url == "https://ghe.example/api/v3" and git.path == "k8s/overlays/prod"
    assert isinstance(sync, ArgoCDSync) and sync.validation_timeout == 42.0
    assert sync.client.base_url == "http://argocd.example:443"
    assert isinstance(rollback, ArgoCDRollback) and rollback.disable_autosync is True


@pytest.mark.parametrize(
    ("mode", "target"),
    [
        ("gitops", ServiceTarget("svc", "prod", None, "app")),
        ("both", ServiceTarget("svc", "prod", None, "app")),
        ("both", ServiceTarget("svc", "prod", GitOpsTarget("acme/gitops", "p"), None)),
        ("argocd", ServiceTarget("svc", "prod", GitOpsTarget("acme/gitops", "p"), None)),
    ],
)
def test_a_mode_without_its_pieces_raises_no_target(mode: str, target: ServiceTarget) -> None:
    with pytest.raises(NoTarget) as caught:
        build_actions(settings(), target, mode)
    assert "svc" in str(caught.value)


def test_mode_argocd_without_a_server_raises_no_target() -> None:
    s = settings(ARGOCD_SERVER="")
    with pytest.raises(NoTarget):
        build_actions(s, s.default_target(), "argocd")


def test_an_unknown_mode_raises_no_target() -> None:
    with pytest.raises(NoTarget):
        build_actions(settings(), settings().default_target(), "sideways")
