"""The runner builds one rollback's job and backends once, for its inspect and its execute."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from receiver.act.base import RollbackAction
from receiver.app import build_engine
from receiver.config import ServiceTarget, Settings
from receiver.intake.payload import parse_alert
from receiver.pipeline import ManualRequest
from receiver.state.memory import Recall, RevisionMemory
from receiver.state.store import Store
from tests.support import Backend, Collector, alert


@pytest.fixture
def counted(
    make_settings: Callable[..., Settings],
    fake_store: Store,
    backend: Backend,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    builds: list[str] = []
    reads: list[str] = []

    def build(settings: Settings, target: ServiceTarget, mode: str) -> Sequence[RollbackAction]:
        builds.append(mode)
        return backend.factory(settings, target, mode)

    for name in ("owner_or_recall", "recall", "bad_revisions", "restored_revisions"):
        original = getattr(RevisionMemory, name)

        def read(
            memory: RevisionMemory, *args: Any, _original: Any = original, _name: str = name
        ) -> Any:
            reads.append(_name)
            return _original(memory, *args)

        monkeypatch.setattr(RevisionMemory, name, read)
    engines = []

    def make(**env: str) -> tuple[Any, list[str], list[str]]:
        engine = build_engine(
            make_settings(**env), store=fake_store, build_actions=build, tell=collector
        )
        engines.append(engine)
        return engine, builds, reads

    yield make
    for engine in engines:
        engine.shutdown(5)


def test_an_alert_rollback_builds_its_backends_and_reads_its_revisions_once(counted: Any) -> None:
    engine, builds, reads = counted()
    outcome = engine.handle_alert(parse_alert(alert(), 0))
    assert outcome.decision == "rollback"
    assert engine.wait_idle(10)
    assert engine.get_record(outcome.rollback_id).state == "completed"
    assert builds == ["gitops"]
    # the duplicate test brought both revision sets and the markers, in its one round trip
    assert reads == ["owner_or_recall"]


def test_an_approved_rollback_builds_its_backends_once_at_approval(counted: Any) -> None:
    engine, builds, _reads = counted(REQUIRE_APPROVAL="true")
    held = engine.handle_alert(parse_alert(alert(), 0))
    assert held.decision == "pending_approval"
    builds.clear()
    engine.approve(held.rollback_id, "alice")
    assert engine.wait_idle(10)
    assert builds == ["gitops"]


def test_a_manual_rollback_uses_the_mode_it_asked_for_for_inspect_and_execute(
    counted: Any,
) -> None:
    engine, builds, _reads = counted()
    outcome, record = engine.manual_rollback(ManualRequest("api", mode="argocd"), "dave")
    assert engine.wait_idle(10)
    assert builds == ["argocd"] and record.mode == "argocd"
    assert engine.get_record(outcome.rollback_id).state == "completed"


@pytest.mark.parametrize("kind", ["fake_store", "real_store"])
def test_one_recall_reads_both_revision_sets_and_the_missing_markers(
    kind: str, request: pytest.FixtureRequest
) -> None:
    memory = RevisionMemory(request.getfixturevalue(kind))
    memory.remember(["api", "git:acme/gitops@main:k8s/api"], "bad1234", "good567")
    memory.remember(["argocd:api"], "bad890", None)
    memory.mark(["api"])
    names = ["api", "git:acme/gitops@main:k8s/api", "argocd:api"]
    recalled = memory.recall(names)
    assert recalled == Recall(
        memory.bad_revisions(names), memory.restored_revisions(names), tuple(memory.unmarked(names))
    )
    assert recalled == Recall(
        frozenset({"bad1234", "bad890"}),
        frozenset({"good567"}),
        ("git:acme/gitops@main:k8s/api", "argocd:api"),
    )
