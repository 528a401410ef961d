"""The decision engine: pure functions from (trigger, facts, settings, origin) to a verdict.

The checks run in the contract's order and the first that blocks gives the
reason. Each check declares the origins it applies to, exactly as the table
under "Decisions" gives them. Facts that cost I/O (an Alertmanager silence
look-up, the backends' `inspect`) start as `None`: when a check needs one,
`decide` answers `needs=<fact>` and the pipeline gathers it and calls again.
When every read-only check passed, the verdict carries a `Plan`: how to make
the atomic reservation (take the lock, only hold the episode, or only peek)
and what the decision is once it passed; `settle` turns the reservation's
answer into the final verdict. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from receiver.config import Settings
from receiver.decide.checks import (
    TIERS,
    TRIGGER_ALERTNAMES,
    Check,
    CheckFn,
    Facts,
    NeedFact,
    Trigger,
    already_rolled_back,
    autosync,
    blackout,
    classify,
    counted_service,
    disabled,
    duplicate,
    no_recent_change,
    no_target,
    resolve_target,
    service_label_value,
    silence_labels,
    silenced,
    target_resolution,
    tier_disabled,
    trigger_kind,
)
from receiver.decide.vocabulary import ESCALATING_REASONS, Decision, Origin, Reason, SkipReason


@dataclass(frozen=True)
class Reservation:
    """What the atomic reservation answered: `ok`, or the reason that blocked it."""

    reason: str  # ok | duplicate | locked | cooldown | rate_limit_hour | rate_limit_day | ...
    rollback_id: str | None = None  # the episode's original id for duplicate
    detail: str = ""
    snapshot: Snapshot | None = None  # peek (explain): the state read check by check


class ReserveMode(StrEnum):
    """How the reservation script runs (state/reservation.py, ARGV 10)."""

    RESERVE = "reserve"  # take the lock and a rate-limit slot: the rollback starts
    HOLD = "hold"  # only claim the episode: approval pending or dry run
    PEEK = "peek"  # change nothing: explain


@dataclass(frozen=True)
class Plan:
    """The reservation to make, and the decision once it passed."""

    mode: ReserveMode
    claims_episode: bool  # the script dedupes and claims the trigger episode
    force: bool  # cooldown and rate limits do not apply
    decision: Decision
    reason: str
    checks: tuple[Check, ...]  # approval and dry_run, reported after the reservation


@dataclass(frozen=True)
class Verdict:
    """A decision and why; `needs` or `plan` set while the pipeline still has work to do."""

    decision: Decision | None
    reason: str
    checks: tuple[Check, ...] = ()
    needs: str | None = None  # silenced | target_facts
    plan: Plan | None = None
    rollback_id: str | None = None  # the original record of a duplicate

    @property
    def complete(self) -> bool:
        return self.needs is None and self.plan is None

    @property
    def escalates(self) -> bool:
        return self.decision == Decision.SKIPPED and self.reason in ESCALATING_REASONS


EVERY = frozenset(Origin)
AUTOMATIC = frozenset({Origin.ALERT, Origin.APPROVAL})
UNFORCED = frozenset({Origin.ALERT, Origin.APPROVAL, Origin.MANUAL})


@dataclass(frozen=True)
class CheckSpec:
    """One check of the contract's table: its name, the origins it applies to, how it reads."""

    name: SkipReason
    origins: frozenset[Origin]
    run: CheckFn | None = None  # None: one of the atomic reservation's checks (Lua)


# In the contract's order. The read-only checks, then the reservation's.
READ_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(SkipReason.DISABLED, AUTOMATIC, disabled),
    CheckSpec(SkipReason.TIER_DISABLED, AUTOMATIC, tier_disabled),
    CheckSpec(SkipReason.NO_TARGET, EVERY, no_target),
    CheckSpec(SkipReason.DUPLICATE, frozenset({Origin.ALERT}), duplicate),
    CheckSpec(SkipReason.BLACKOUT, AUTOMATIC, blackout),
    CheckSpec(SkipReason.SILENCED, AUTOMATIC, silenced),
    CheckSpec(SkipReason.ALREADY_ROLLED_BACK, AUTOMATIC, already_rolled_back),
    CheckSpec(SkipReason.NO_RECENT_CHANGE, AUTOMATIC, no_recent_change),
    CheckSpec(SkipReason.AUTOSYNC_ENABLED, EVERY, autosync),
)
RESERVATION_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(SkipReason.LOCKED, EVERY),
    CheckSpec(SkipReason.COOLDOWN, UNFORCED),
    CheckSpec(SkipReason.RATE_LIMIT_HOUR, UNFORCED),
    CheckSpec(SkipReason.RATE_LIMIT_DAY, UNFORCED),
    CheckSpec(SkipReason.GLOBAL_LIMIT, EVERY),
)
APPROVAL_ORIGINS = frozenset({Origin.ALERT})  # and only when REQUIRE_APPROVAL
DRY_RUN_ORIGINS = EVERY  # DRY_RUN, or a manual request's own dry_run


def origins_of(check: str) -> frozenset[Origin]:
    """The origins a check applies to (the contract's table under "Decisions")."""
    if check == "approval":
        return APPROVAL_ORIGINS
    if check == "dry_run":
        return DRY_RUN_ORIGINS
    for spec in READ_CHECKS + RESERVATION_CHECKS:
        if spec.name == check:
            return spec.origins
    raise KeyError(check)


def decide(
    trigger: Trigger, facts: Facts, settings: Settings, origin: Origin, every: bool = False
) -> Verdict:
    """Run the read-only checks in the contract's order; the first that blocks gives the reason.

    With `every` (explain, replay) the checks after the first block run too.
    """
    if not trigger.alert.firing:
        return Verdict(Decision.IGNORED, Reason.RESOLVED)
    if trigger.tier is None:
        return Verdict(Decision.IGNORED, Reason.NOT_A_TRIGGER)
    if trigger.unusable is not None:
        refused = Check(SkipReason.INVALID_ALERT, False, f"alert not usable: {trigger.unusable}")
        return Verdict(Decision.SKIPPED, SkipReason.INVALID_ALERT, (refused,))
    checks: list[Check] = []
    blocked: Check | None = None
    for spec in READ_CHECKS:
        assert spec.run is not None
        if origin not in spec.origins:
            checks.append(Check(spec.name, True, f"does not apply to {origin} rollbacks"))
            continue
        try:
            check = spec.run(trigger, facts, settings)
        except NeedFact as need:
            why = _unreadable(need.fact, facts) if blocked is not None else None
            if why is None:
                return Verdict(None, "", tuple(checks), needs=need.fact)
            check = Check(spec.name, None, f"not evaluated: {why}")
        if spec.name in TARGET_FACT_CHECKS and facts.target_error and blocked is not None:
            check = Check(spec.name, None, f"not evaluated: {facts.target_error}")
        checks.append(check)
        if check.passed is False and blocked is None:
            blocked = check
            if not every:
                break
    if blocked is None:
        return Verdict(None, "", tuple(checks), plan=_plan(origin, facts, settings))
    duplicate_id = facts.duplicate_of if blocked.name == SkipReason.DUPLICATE else None
    plan = _plan(origin, facts, settings) if every else None
    return Verdict(
        Decision.SKIPPED, blocked.name, tuple(checks), plan=plan, rollback_id=duplicate_id
    )


TARGET_FACT_CHECKS = frozenset(
    {SkipReason.ALREADY_ROLLED_BACK, SkipReason.NO_RECENT_CHANGE, SkipReason.AUTOSYNC_ENABLED}
)


def _unreadable(fact: str, facts: Facts) -> str | None:
    """Why a fact cannot be gathered after an earlier block, or None when it can."""
    if fact == "target_facts" and facts.target is None:
        return "no rollback target to inspect"
    return None


def _plan(origin: Origin, facts: Facts, settings: Settings) -> Plan:
    """The one approval / dry-run rule: either takes no lock and no slot, only the episode."""
    claims_episode = origin in origins_of(SkipReason.DUPLICATE)
    force = origin not in origins_of(SkipReason.COOLDOWN)
    if settings.require_approval and origin in APPROVAL_ORIGINS:
        wait = Check("approval", False, "REQUIRE_APPROVAL=true: waiting for approval")
        return Plan(
            ReserveMode.HOLD,
            claims_episode,
            force,
            Decision.PENDING_APPROVAL,
            Reason.APPROVAL_REQUIRED,
            (wait,),
        )
    approval = Check(
        "approval", True, "not required" if origin in APPROVAL_ORIGINS else f"{origin} rollback"
    )
    if settings.dry_run or facts.dry_run:
        dry = Check("dry_run", False, "dry run: would roll back, changed nothing")
        return Plan(
            ReserveMode.HOLD,
            claims_episode,
            force,
            Decision.SKIPPED,
            SkipReason.DRY_RUN,
            (approval, dry),
        )
    return Plan(
        ReserveMode.RESERVE,
        claims_episode,
        force,
        Decision.ROLLBACK,
        Reason.PASSED,
        (approval, Check("dry_run", True, "DRY_RUN=false")),
    )


def settle(verdict: Verdict, reservation: Reservation) -> Verdict:
    """The final verdict once the planned reservation answered.

    With a snapshot (explain) every reservation check is shown and an earlier block stays.
    """
    plan = verdict.plan
    assert plan is not None
    every = reservation.snapshot
    if every is not None:
        shown = (*verdict.checks, *reservation_checks(plan, reservation, every), *plan.checks)
        if verdict.decision is not None:
            return Verdict(verdict.decision, verdict.reason, shown, rollback_id=verdict.rollback_id)
        if reservation.reason != "ok":
            return Verdict(
                Decision.SKIPPED, reservation.reason, shown, rollback_id=reservation.rollback_id
            )
        return Verdict(plan.decision, plan.reason, shown)
    if reservation.reason != "ok":
        blocked = Check(reservation.reason, False, reservation.detail or reservation.reason)
        return Verdict(
            Decision.SKIPPED,
            reservation.reason,
            (*verdict.checks, blocked),
            rollback_id=reservation.rollback_id,
        )
    passed = Check("reservation", True, "lock, cooldown and rate limits passed")
    return Verdict(plan.decision, plan.reason, (*verdict.checks, passed, *plan.checks))


@dataclass(frozen=True)
class Snapshot:
    """A read of the reservation's state, to show each of its checks (explain)."""

    locked_by: str | None
    cooldown_seconds_left: float
    last_hour: int
    last_day: int
    running: int
    settings: Settings


def reservation_checks(plan: Plan, reservation: Reservation, snap: Snapshot) -> list[Check]:
    """Each reservation check; the one the atomic script blocked on keeps its answer."""
    s = snap.settings
    results = {
        SkipReason.LOCKED: (
            snap.locked_by is None,
            f"locked by {snap.locked_by}" if snap.locked_by else "no rollback holds the lock",
        ),
        SkipReason.COOLDOWN: (
            snap.cooldown_seconds_left <= 0,
            f"cooldown: {int(snap.cooldown_seconds_left)} s left"
            if snap.cooldown_seconds_left > 0
            else f"no rollback in the last COOLDOWN_MINUTES={s.cooldown_minutes}",
        ),
        SkipReason.RATE_LIMIT_HOUR: (
            snap.last_hour < s.max_rollbacks_per_hour,
            f"{snap.last_hour} rollback(s) in the last hour "
            f"(MAX_ROLLBACKS_PER_HOUR={s.max_rollbacks_per_hour})",
        ),
        SkipReason.RATE_LIMIT_DAY: (
            snap.last_day < s.max_rollbacks_per_day,
            f"{snap.last_day} rollback(s) in the last day "
            f"(MAX_ROLLBACKS_PER_DAY={s.max_rollbacks_per_day})",
        ),
        SkipReason.GLOBAL_LIMIT: (
            snap.running < s.max_concurrent_rollbacks,
            f"{snap.running} rollback(s) running or started within GLOBAL_LIMIT_WINDOW "
            f"(MAX_CONCURRENT_ROLLBACKS={s.max_concurrent_rollbacks})",
        ),
    }
    checks = []
    for spec in RESERVATION_CHECKS:
        if reservation.reason == spec.name:
            checks.append(Check(spec.name, False, reservation.detail or spec.name))
        elif plan.force and spec.name not in (SkipReason.LOCKED, SkipReason.GLOBAL_LIMIT):
            checks.append(Check(spec.name, True, "does not apply: forced"))
        else:
            passed, detail = results[spec.name]
            checks.append(Check(spec.name, passed, detail))
    return checks


def reservation_from(reason: str, detail: str, settings: Settings, target: str = "") -> Reservation:
    """The reservation script's answer, with a detail an operator can read.

    `target` names the shared safety target (Argo CD app, repo+branch+path) that blocked.
    """
    s = settings
    describe: dict[str, Callable[[], str]] = {
        "locked": lambda: f"another rollback ({detail}) holds the lock",
        "cooldown": lambda: f"cooldown: {int(detail or 0) // 1000} s left",
        "rate_limit_hour": lambda: (
            f"{detail} rollback(s) in the last hour "
            f"(MAX_ROLLBACKS_PER_HOUR={s.max_rollbacks_per_hour})"
        ),
        "rate_limit_day": lambda: (
            f"{detail} rollback(s) in the last day "
            f"(MAX_ROLLBACKS_PER_DAY={s.max_rollbacks_per_day})"
        ),
        "global_limit": lambda: (
            f"{detail} rollbacks running or started within GLOBAL_LIMIT_WINDOW "
            f"(MAX_CONCURRENT_ROLLBACKS={s.max_concurrent_rollbacks}): "
            "a platform incident, not a deploy?"
        ),
        "duplicate": lambda: f"episode already handled as {detail}",
    }
    text = describe[reason]() if reason in describe else ""
    if target:
        text = f"shared target {target}: {text}"
    return Reservation(reason, rollback_id=detail if reason == "duplicate" else None, detail=text)


def with_fact(facts: Facts, **changes: object) -> Facts:
    return replace(facts, **changes)  # type: ignore[arg-type]


def explain(verdict: Verdict) -> list[dict[str, object]]:
    """Checks as plain dicts, for /api/v1/explain and `replay`."""
    return [{"check": c.name, "passed": c.passed, "detail": c.detail} for c in verdict.checks]


__all__ = [
    "TIERS",
    "TRIGGER_ALERTNAMES",
    "Check",
    "CheckSpec",
    "Facts",
    "NeedFact",
    "Plan",
    "Reservation",
    "ReserveMode",
    "Snapshot",
    "Trigger",
    "Verdict",
    "classify",
    "counted_service",
    "decide",
    "explain",
    "origins_of",
    "reservation_checks",
    "reservation_from",
    "resolve_target",
    "service_label_value",
    "settle",
    "silence_labels",
    "target_resolution",
    "trigger_kind",
    "with_fact",
]
