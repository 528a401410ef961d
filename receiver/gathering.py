"""Gathering the facts the checks ask for: a silence look-up, the backends' inspect."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from receiver.act.dispatch import target_memory_names
from receiver.config import Settings
from receiver.decide.facts import TargetFacts
from receiver.decide.policy import (
    Facts,
    Trigger,
    Verdict,
    classify,
    decide,
    origins_of,
    silence_labels,
    target_resolution,
    with_fact,
)
from receiver.decide.vocabulary import Origin, SkipReason
from receiver.errors import ActionError
from receiver.intake.payload import Alert
from receiver.records import ManualRequest
from receiver.runner import Preparation, Runner
from receiver.state.history import RollbackRecord, new_id
from receiver.state.memory import Recall, RevisionMemory
from receiver.state.store import Store

log = logging.getLogger("receiver.pipeline")

SilenceCheck = Callable[[dict[str, str]], "tuple[bool, str]"]  # (silenced, note); raises on error


@dataclass(frozen=True)
class Step:
    """Where one trigger stands after deciding and reserving."""

    trigger: Trigger
    rollback_id: str
    request: ManualRequest | None
    facts: Facts
    verdict: Verdict
    prep: Preparation | None  # the job and backends, once a check needed them
    record: RollbackRecord | None = None  # created by the reservation itself, if it passed


@dataclass(frozen=True)
class Gathered:
    """One trigger's facts and the verdict they give, before its turn to reserve."""

    trigger: Trigger
    rollback_id: str
    origin: Origin
    facts: Facts | None = None
    verdict: Verdict | None = None
    prep: Preparation | None = None  # the job and backends, once a check needed them
    error: Exception | None = None  # raised again on the trigger's turn, in delivery order

    def unpack(self) -> tuple[Trigger, str, Facts, Verdict, Preparation | None]:
        """The gathered parts; the gathering's error is raised here, on the trigger's turn."""
        if self.error is not None:
            raise self.error
        assert self.facts is not None and self.verdict is not None
        return self.trigger, self.rollback_id, self.facts, self.verdict, self.prep


class Sources(Protocol):
    """Where facts come from: the engine's store, settings, runner and silence check."""

    store: Store
    settings: Settings
    runner: Runner
    silences: SilenceCheck | None


def gather(
    sources: Sources,
    trigger: Trigger,
    origin: Origin,
    rollback_id: str,
    request: ManualRequest | None,
    every: bool = False,
) -> Gathered:
    """The facts the checks ask for (cheap ones first), and the verdict they give.

    With `every` (explain, replay) the checks after the first block are evaluated too.
    """
    store, settings, runner = sources.store, sources.settings, sources.runner
    (facts, recalled), prep = first_facts(store, settings, trigger, origin, request), None
    verdict = decide(trigger, facts, settings, origin, every=every)
    for _ in range(2):  # one round per costly fact
        if verdict.needs is None:
            break
        if verdict.needs == "silenced":
            facts = check_silence(sources.silences, trigger, facts)
        elif verdict.needs == "target_facts" and facts.target is not None:
            prep = runner.prepare(trigger, facts.target, rollback_id, request, recalled)
            facts = inspect_target(prep, trigger, facts)
        verdict = decide(trigger, facts, settings, origin, every=every)
    return Gathered(trigger, rollback_id, origin, facts, verdict, prep)


GatherOne = Callable[[Trigger, Origin, str, "ManualRequest | None"], Gathered]


GATHER_THREADS = 4  # the facts of one delivery gathered at once: a handful of GitHub requests
_POOL = ThreadPoolExecutor(GATHER_THREADS, thread_name_prefix="gather")  # one per process
# Alerts gathered at once in the process, in the pool or in a request's own thread.
_SLOTS = threading.BoundedSemaphore(GATHER_THREADS)


def gather_all(
    alerts: Sequence[Alert], settings: Settings, gather_one: GatherOne
) -> list[Gathered | None]:
    """Every alert's facts, gathered concurrently (None: classified again on its turn)."""

    def one(alert: Alert) -> Gathered | None:
        try:
            trigger = classify(alert, settings)
        except Exception:
            return None  # classified again on its turn, where the error is handled
        rollback_id = new_id()
        try:
            with _SLOTS:
                return gather_one(trigger, Origin.ALERT, rollback_id, None)
        except Exception as exc:
            return Gathered(trigger, rollback_id, Origin.ALERT, error=exc)

    if len(alerts) == 1:  # a lone alert is gathered in the request's thread: no hand-off
        return [copy_context().run(one, alerts[0])]
    futures = [_POOL.submit(copy_context().run, one, alert) for alert in alerts]
    return [future.result() for future in futures]


def first_facts(
    store: Store,
    settings: Settings,
    trigger: Trigger,
    origin: Origin,
    request: ManualRequest | None,
) -> tuple[Facts, Recall | None]:
    """The cheap facts: now, the target, and the episode's earlier rollback id if any.

    A new episode's revision memory comes back in the same round trip (for the inspect).
    """
    if trigger.unusable is not None:  # decided `invalid_alert`: no label reaches Redis
        return Facts(now=datetime.now(UTC)), None
    duplicate_of, recalled = None, None
    resolution = target_resolution(trigger, settings)
    firing_trigger = trigger.tier is not None and trigger.alert.firing
    # no_target is checked before duplicate: a service without a target costs no Redis read
    if firing_trigger and resolution.target and origin in origins_of(SkipReason.DUPLICATE):
        names = target_memory_names(trigger.service, resolution.target)
        duplicate_of, recalled = RevisionMemory(store).owner_or_recall(trigger.episode, names)
    facts = Facts(
        now=datetime.now(UTC),
        target=resolution.target,
        target_error=resolution.reason,
        duplicate_of=duplicate_of,
        dry_run=bool(request and request.dry_run),
    )
    return facts, recalled


def check_silence(silences: SilenceCheck | None, trigger: Trigger, facts: Facts) -> Facts:
    """Whether an Alertmanager silence made after the delivery now matches the alert."""
    if silences is None:
        return with_fact(facts, silenced=False, silence_note="silences not checked")
    try:
        silenced, note = silences(silence_labels(trigger))
    except Exception as exc:
        # The contract's one deliberate exception to "in doubt, don't": the delivery
        # left Alertmanager moments ago, so its silence state is fresh enough.
        log.warning(
            "could not ask Alertmanager for silences; proceeding",
            extra={"service": trigger.service, "error": str(exc)},
        )
        return with_fact(
            facts,
            silenced=False,
            silence_note="Alertmanager unreachable; proceeding without re-check",
        )
    return with_fact(facts, silenced=silenced, silence_note=note)


def inspect_target(prep: Preparation, trigger: Trigger, facts: Facts) -> Facts:
    """What the backends read about the target; in doubt, a `no_target` error."""
    try:
        return with_fact(facts, target_facts=prep.inspect())
    except LookupError as exc:  # NoTarget: the configuration lacks a piece this mode needs
        log.warning(
            "no rollback target for this mode",
            extra={"service": trigger.service, "error": str(exc)},
        )
        return with_fact(facts, target_error=str(exc), target_facts=TargetFacts())
    except (ActionError, ValueError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        log.warning(
            "cannot inspect the rollback target; not rolling back",
            extra={"service": trigger.service, "error": message},
        )
        return with_fact(
            facts, target_error=f"cannot inspect target: {message}", target_facts=TargetFacts()
        )
