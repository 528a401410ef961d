"""Manual rollbacks through the API with the real backends against the GitHub and Argo CD fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.app import build_engine, create_app
from receiver.config import Settings
from receiver.pipeline import Engine
from receiver.state.store import Store
from tests.fakes import BareRepo
from tests.fakes.argocd import FakeApp, running_argocd
from tests.fakes.github_api import FakeGitHub, running_github
from tests.gitops_support import PATH, commit_of, seed_manifests
from tests.support import Collector

TOKEN = "ghp_manual_target_token"
ARGO_PASSWORD = "argo-pass"


@pytest.fixture
def repo(tmp_path: Path) -> BareRepo:
    return seed_manifests(tmp_path / "gitops.git")


@pytest.fixture
def github(repo: BareRepo) -> Iterator[FakeGitHub]:
    with running_github(repo, "acme/gitops", TOKEN) as fake:
        yield fake


@pytest.fixture
def start(
    make_settings: Callable[..., Settings], fake_store: Store, collector: Collector
) -> Iterator[Callable[..., tuple[Any, Engine]]]:
    engines: list[Engine] = []

    def make(**env: str) -> tuple[Any, Engine]:
        engine = build_engine(make_settings(**env), store=fake_store, tell=collector)
        engines.append(engine)
        app = create_app(engine.settings, engine=engine, start_sweeper=False)
        return app.test_client(), engine

    yield make
    for engine in engines:
        engine.shutdown(5)


def gitops_env(github: FakeGitHub) -> dict[str, str]:
    return {
        "GITOPS_PATH": PATH,
        "GITHUB_API_URL": github.base_url,
        "GITOPS_TOKEN": TOKEN,
        "ROLLBACK_MODE": "gitops",
    }


ADMIN = {"Authorization": "Bearer admin-secret-token"}


def test_a_target_commit_that_does_not_exist_is_refused_before_answering(
    start: Callable[..., tuple[Any, Engine]], github: FakeGitHub, repo: BareRepo
) -> None:
    client, engine = start(**gitops_env(github))
    head = repo.head()
    answer = client.post(
        "/api/v1/rollbacks",
        headers=ADMIN,
        json={"service": "api", "target_commit": "deadbeef", "reason": "typo"},
    )
    assert answer.status_code == 409
    error = answer.get_json()["error"]
    assert "no_target" in error and "target commit deadbeef does not exist in acme/gitops" in error
    assert engine.wait_idle(10)
    assert repo.head() == head  # nothing pushed, nothing runs on in the background
    assert all(r.state != "running" for r in engine.store.list_records())


def test_an_existing_target_commit_is_accepted_and_restored(
    start: Callable[..., tuple[Any, Engine]], github: FakeGitHub, repo: BareRepo
) -> None:
    client, engine = start(**gitops_env(github))
    v1 = commit_of(repo, "v1")
    answer = client.post(
        "/api/v1/rollbacks", headers=ADMIN, json={"service": "api", "target_commit": v1[:10]}
    )
    assert answer.status_code == 202, answer.get_json()
    assert engine.wait_idle(20)
    record = engine.store.get_record(answer.get_json()["rollback_id"])
    assert record is not None and record.state == "completed", record
    assert record.target["commit"] == v1


def test_gitops_only_without_argocd_does_not_claim_a_validation(
    start: Callable[..., tuple[Any, Engine]], github: FakeGitHub
) -> None:
    client, engine = start(**gitops_env(github))
    answer = client.post("/api/v1/rollbacks", headers=ADMIN, json={"service": "api"})
    assert answer.status_code == 202, answer.get_json()
    assert engine.wait_idle(20)
    record = engine.store.get_record(answer.get_json()["rollback_id"])
    assert record is not None and record.state == "completed"
    assert record.validated is None
    assert str(record.details["validation"]).startswith("not validated: no Argo CD application")
    autosync = next(c for c in record.checks if c["check"] == "autosync_enabled")
    assert autosync["detail"] == "no Argo CD action in this rollback: not consulted"


def test_a_target_revision_not_in_the_argocd_history_is_refused_before_answering(
    start: Callable[..., tuple[Any, Engine]],
) -> None:
    app = FakeApp("api-prod", revisions=["a" * 40, "b" * 40, "c" * 40])
    with running_argocd(app, password=ARGO_PASSWORD) as argocd:
        client, engine = start(
            ROLLBACK_MODE="argocd",
            ARGOCD_SERVER=argocd.address,
            ARGOCD_PLAINTEXT="true",
            ARGOCD_APP_NAME="api-prod",
            ARGOCD_PASSWORD=ARGO_PASSWORD,
        )
        answer = client.post(
            "/api/v1/rollbacks",
            headers=ADMIN,
            json={"service": "api", "mode": "argocd", "target_revision": "d" * 12},
        )
        assert answer.status_code == 409
        assert (
            "does not have deployment id or revision 'dddddddddddd'" in answer.get_json()["error"]
        )
        assert engine.wait_idle(10)
        assert len(app.history) == 3  # no rollback reached Argo CD


def test_the_cli_prints_the_refusal_of_an_unknown_target_commit_and_exits_1(
    start: Callable[..., tuple[Any, Engine]], github: FakeGitHub, repo: BareRepo
) -> None:
    from click.testing import CliRunner

    from receiver.cli import main
    from tests.support import live_server

    _client, engine = start(**gitops_env(github))
    head = repo.head()
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        result = CliRunner().invoke(
            main,
            ["rollback", "--service", "api", "--target-commit", "deadbeef", "--wait"],
            env={"RECEIVER_URL": url, "ADMIN_TOKEN": "admin-secret-token", "USER": "frank"},
        )
    assert result.exit_code == 1, result.output
    assert "target commit deadbeef does not exist in acme/gitops" in result.output
    assert "running" not in result.output
    assert repo.head() == head
