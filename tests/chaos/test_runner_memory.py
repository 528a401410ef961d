"""Revision memory under faults (issue 10 item 1): Argo CD mode, a throwaway Redis, fake Argo CD.

History [V1, V2, V3(bad), V2(ours)]: no later trigger may pick V3 — after a lost answer, a
failed validation, or FLUSHALL (then re-derived from the history entries the receiver's own
account started; a person's entries are never taken for the receiver's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from receiver.act.argocd import ArgoCDRollback
from receiver.act.base import RollbackAction
from receiver.act.gitops_common import GitOpsOptions
from receiver.act.gitops_git import GitRevert
from receiver.act.polling import Pacing
from receiver.app import build_engine
from receiver.clients.argocd import ArgoCDClient, forget_sessions
from receiver.config import Secret, ServiceTarget, Settings
from receiver.intake.payload import parse_alert
from receiver.pipeline import Engine, ManualRequest
from receiver.state.memory import RevisionMemory
from receiver.state.store import Store
from tests.chaos.redis_proc import RedisProcess
from tests.fakes.argocd import FakeApp, FakeArgoCD, running_argocd
from tests.gitops_support import PATH, seed_manifests
from tests.support import Collector, alert

V1, V2, V3 = "1" * 40, "2" * 40, "3" * 40
PASSWORD = "argo-pass"


@pytest.fixture
def argocd() -> Iterator[FakeArgoCD]:
    forget_sessions()
    app = FakeApp("checkout", revisions=[V1, V2, V3], resolve=lambda: V3)
    with running_argocd(app, password=PASSWORD) as fake:
        yield fake
    forget_sessions()


class Setup:
    """An engine in mode argocd on the throwaway Redis and the fake Argo CD."""

    def __init__(self, settings: Settings, store: Store, fake: FakeArgoCD) -> None:
        self.fake, self.store, self.collector = fake, store, Collector()

        def build(settings: Settings, target: ServiceTarget, mode: str) -> Sequence[RollbackAction]:
            client = ArgoCDClient(
                fake.address, password=Secret("ARGOCD_PASSWORD", PASSWORD), plaintext=True
            )
            return [ArgoCDRollback(client, "checkout", validation_timeout=5, pacing=Pacing(0.05))]

        self.engine: Engine = build_engine(
            settings, store=store, build_actions=build, tell=self.collector
        )

    @property
    def app(self) -> FakeApp:
        return self.fake.apps["checkout"]

    def fire(self, fingerprint: str) -> Any:
        outcome = self.engine.handle_alert(parse_alert(alert("api", fingerprint=fingerprint), 0))
        assert self.engine.wait_idle(20)
        return outcome

    def deployed(self) -> list[str]:
        return [entry["revision"] for entry in self.app.history]


@pytest.fixture
def make_setup(
    make_settings: Callable[..., Settings], chaos_store: Store, argocd: FakeArgoCD
) -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def make(**env: str) -> Setup:
        settings = make_settings(
            ROLLBACK_MODE="argocd",
            ARGOCD_SERVER=argocd.address,
            ARGOCD_PLAINTEXT="true",
            ARGOCD_APP_NAME="checkout",
            ROLLBACK_CHANGE_WINDOW="24h",
            **env,
        )
        made.append(Setup(settings, chaos_store, argocd))
        return made[-1]

    yield make
    for setup in made:
        setup.engine.shutdown(5)


def test_after_flushall_the_cooldown_holds_from_argo_cd_history(
    make_setup: Callable[..., Setup], redis_server: RedisProcess
) -> None:
    setup = make_setup(COOLDOWN_MINUTES="30")
    first = setup.fire("00000000000000d1")
    assert first.decision == "rollback"
    assert setup.deployed() == [V1, V2, V3, V2]
    redis_server.client().flushall()
    second = setup.fire("00000000000000d2")  # a new episode: Redis remembers nothing
    assert second.decision == "skipped"
    assert second.reason in ("cooldown", "already_rolled_back")
    assert setup.deployed() == [V1, V2, V3, V2]
    assert V3 in RevisionMemory(setup.store).bad_revisions(["argocd:checkout"])


def test_after_flushall_no_trigger_redeploys_the_bad_revision_and_force_passes_cooldown(
    make_setup: Callable[..., Setup], redis_server: RedisProcess
) -> None:
    setup = make_setup(COOLDOWN_MINUTES="0", MAX_ROLLBACKS_PER_HOUR="10")
    assert setup.fire("00000000000000e1").decision == "rollback"
    redis_server.client().flushall()
    later = setup.fire("00000000000000e2")
    assert (later.decision, later.reason) == ("skipped", "already_rolled_back")
    assert setup.deployed() == [V1, V2, V3, V2]
    forced = make_setup(COOLDOWN_MINUTES="60")
    outcome, _record = forced.engine.manual_rollback(
        ManualRequest(service="api", reason="operator", force=True), "alice"
    )
    assert outcome.decision == "rollback"
    assert forced.engine.wait_idle(20)
    assert setup.deployed()[-1] == V1  # never V3, the revision it rolled back from


@pytest.mark.parametrize("fault", ["answer_lost", "validation_failed"])
def test_a_rollback_that_ended_failed_still_keeps_the_bad_revision_out(
    make_setup: Callable[..., Setup], fault: str
) -> None:
    setup = make_setup(COOLDOWN_MINUTES="0", MAX_ROLLBACKS_PER_HOUR="10")
    if fault == "answer_lost":
        setup.fake.lose_answer("POST", "/rollback$", times=2)
    else:
        setup.app.health_after_sync = "Degraded"
    setup.fire("00000000000000f1")
    assert setup.deployed() == [V1, V2, V3, V2]
    setup.app.health_after_sync = "Healthy"
    later = setup.fire("00000000000000f2")
    assert (later.decision, later.reason) == ("skipped", "already_rolled_back")
    assert setup.deployed() == [V1, V2, V3, V2]  # not rolled "back" to V3


def test_a_persons_rollback_is_not_taken_for_the_receivers(
    make_setup: Callable[..., Setup],
) -> None:
    setup = make_setup(COOLDOWN_MINUTES="30")
    app = setup.app
    app._deploy_record(V2, app_time(app), {"username": "alice"})  # `argocd app rollback` by hand
    outcome = setup.fire("00000000000000a7")
    assert (outcome.decision, outcome.reason) == ("rollback", "passed")


def app_time(app: FakeApp) -> float:
    import time

    return time.time() - 60


def test_after_flushall_the_cooldown_holds_from_the_receivers_own_commits(
    make_settings: Callable[..., Settings],
    chaos_store: Store,
    redis_server: RedisProcess,
    tmp_path: Path,
) -> None:
    bare = seed_manifests(tmp_path / "gitops.git")
    settings = make_settings(
        GITOPS_REPO=bare.url,
        GITOPS_PATH=PATH,
        COOLDOWN_MINUTES="30",
        MAX_ROLLBACKS_PER_HOUR="10",
        ROLLBACK_CHANGE_WINDOW="48h",
    )

    def build(settings: Settings, target: ServiceTarget, mode: str) -> Sequence[RollbackAction]:
        options = GitOpsOptions(repo=bare.url, path=PATH, branch="main")
        return [GitRevert(options, cache_dir=tmp_path / "cache")]

    engine = build_engine(settings, store=chaos_store, build_actions=build, tell=Collector())
    try:
        first = engine.handle_alert(parse_alert(alert("api", fingerprint="00000000000000b1"), 0))
        assert first.decision == "rollback"
        assert engine.wait_idle(30)
        bare.commit_files({f"{PATH}/deploy.yaml": "image: app:v4"}, "v4 by a person")
        redis_server.client().flushall()
        later = engine.handle_alert(parse_alert(alert("api", fingerprint="00000000000000b2"), 0))
        assert (later.decision, later.reason) == ("skipped", "cooldown")
        assert engine.wait_idle(10)
        assert bare.message(bare.git("rev-parse", "main")) == "v4 by a person"
    finally:
        engine.shutdown(5)
