"""Gathering the facts the checks ask for: a silence look-up, the backends' inspect."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from receiver.config import Settings
from receiver.decide.facts import TargetFacts
from receiver.decide.policy import Facts, Trigger, origins_of, target_resolution, with_fact
from receiver.decide.vocabulary import Origin, SkipReason
from receiver.errors import ActionError
from receiver.records import ManualRequest
from receiver.runner import Preparation
from receiver.state.store import Store

log = logging.getLogger("receiver.pipeline")

SilenceCheck = Callable[[dict[str, str]], "tuple[bool, str]"]  # (silenced, note); raises on error


def first_facts(
    store: Store,
    settings: Settings,
    trigger: Trigger,
    origin: Origin,
    request: ManualRequest | None,
) -> Facts:
    """The cheap facts: now, the target, and the episode's earlier rollback id if any."""
    if trigger.unusable is not None:  # decided `invalid_alert`: no label reaches Redis
        return Facts(now=datetime.now(UTC))
    duplicate_of = None
    resolution = target_resolution(trigger, settings)
    firing_trigger = trigger.tier is not None and trigger.alert.firing
    # no_target is checked before duplicate: a service without a target costs no Redis read
    if firing_trigger and resolution.target and origin in origins_of(SkipReason.DUPLICATE):
        duplicate_of = store.episode_owner(trigger.episode)
    return Facts(
        now=datetime.now(UTC),
        target=resolution.target,
        target_error=resolution.reason,
        duplicate_of=duplicate_of,
        dry_run=bool(request and request.dry_run),
    )


def check_silence(silences: SilenceCheck | None, trigger: Trigger, facts: Facts) -> Facts:
    """Whether an Alertmanager silence made after the delivery now matches the alert."""
    if silences is None:
        return with_fact(facts, silenced=False, silence_note="silences not checked")
    try:
        silenced, note = silences(dict(trigger.alert.labels))
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
