"""Which checks apply to which origin: the table under "Decisions" in the contract, walked."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.decide.policy import (
    READ_CHECKS,
    RESERVATION_CHECKS,
    Reservation,
    decide,
    origins_of,
    settle,
)
from receiver.decide.vocabulary import Decision, Origin
from receiver.reserving import reserve
from receiver.state.history import RollbackRecord, State, iso
from receiver.state.store import Store
from tests.test_policy import BLOCKERS, good_facts, settings, trigger_of

# The contract's table, copied as data: check -> (alert, approval/veto, manual, manual --force).
CONTRACT_TABLE: dict[str, tuple[bool, bool, bool, bool]] = {
    "disabled": (True, True, False, False),
    "tier_disabled": (True, True, False, False),
    "no_target": (True, True, True, True),
    "autosync_enabled": (True, True, True, True),
    "locked": (True, True, True, True),
    "global_limit": (True, True, True, True),
    "duplicate": (True, False, False, False),
    "blackout": (True, True, False, False),
    "silenced": (True, True, False, False),
    "already_rolled_back": (True, True, False, False),
    "no_recent_change": (True, True, False, False),
    "cooldown": (True, True, True, False),
    "rate_limit_hour": (True, True, True, False),
    "rate_limit_day": (True, True, True, False),
    "approval": (True, False, False, False),  # when REQUIRE_APPROVAL
    "dry_run": (True, True, True, True),  # DRY_RUN (or a manual request's --dry-run)
}
COLUMNS = (Origin.ALERT, Origin.APPROVAL, Origin.MANUAL, Origin.MANUAL_FORCE)
CELLS = [
    (check, origin, applies)
    for check, row in CONTRACT_TABLE.items()
    for origin, applies in zip(COLUMNS, row, strict=True)
]
READ_NAMES = {str(spec.name) for spec in READ_CHECKS}
RESERVED_NAMES = {str(spec.name) for spec in RESERVATION_CHECKS}


def test_the_policy_declares_every_check_of_the_table_and_no_other() -> None:
    assert READ_NAMES | RESERVED_NAMES | {"approval", "dry_run"} == set(CONTRACT_TABLE)


@pytest.mark.parametrize(("check", "origin", "applies"), CELLS)
def test_each_check_declares_the_origins_the_contract_gives_it(
    check: str, origin: Origin, applies: bool
) -> None:
    assert (origin in origins_of(check)) is applies


def blocked_by(check: str, origin: Origin) -> tuple[Decision | None, str]:
    """Decide a trigger where only `check` would block, as a rollback of `origin`."""
    env, changes = BLOCKERS[check]
    s = settings(**{"BLACKOUT_WINDOWS": "none", **env})
    t = trigger_of()
    verdict = decide(t, good_facts(s, t, **changes), s, origin)
    if verdict.plan is not None:
        verdict = settle(verdict, Reservation("ok"))
    assert verdict.complete
    return verdict.decision, verdict.reason


@pytest.mark.parametrize(
    ("check", "origin", "applies"),
    [c for c in CELLS if c[0] in READ_NAMES | {"approval", "dry_run"}],
)
def test_a_read_check_blocks_exactly_the_origins_it_applies_to(
    check: str, origin: Origin, applies: bool
) -> None:
    decision, reason = blocked_by(check, origin)
    blocked = {"approval": "approval_required"}.get(check, check)
    assert (reason == blocked) is applies
    if not applies:
        assert (decision, reason) == (Decision.ROLLBACK, "passed")


def _pending_record(store: Store, rollback_id: str) -> None:
    record = RollbackRecord(
        id=rollback_id,
        service="api",
        namespace="production",
        tier="emergency",
        decision=Decision.PENDING_APPROVAL,
        reason="approval_required",
        state=State.PENDING_APPROVAL,
        trigger={},
        created_at=iso(),
    )
    store.create_record(record)


def _occupy(store: Store, check: str) -> dict[str, str]:
    """Put the store in the state where `check` blocks; answers the settings it needs."""
    common: dict[str, Any] = dict(
        rollback_id="rb-earlier",
        episode=None,
        mode="reserve",
        force=False,
        lease_seconds=60,
        max_hour=10,
        max_day=10,
        max_concurrent=10,
    )
    if check == "global_limit":
        store.reserve(service="web", cooldown_minutes=0, **common)
        return {"MAX_CONCURRENT_ROLLBACKS": "1"}
    store.reserve(service="api", cooldown_minutes=0, **common)
    if check == "locked":
        return {}
    store.release("api", "rb-earlier")  # a finished rollback: its start still counts
    return {
        "cooldown": {"COOLDOWN_MINUTES": "60"},
        "rate_limit_hour": {"COOLDOWN_MINUTES": "0", "MAX_ROLLBACKS_PER_HOUR": "1"},
        "rate_limit_day": {
            "COOLDOWN_MINUTES": "0",
            "MAX_ROLLBACKS_PER_HOUR": "5",
            "MAX_ROLLBACKS_PER_DAY": "1",
        },
    }[check]


@pytest.mark.parametrize(
    ("check", "origin", "applies"), [c for c in CELLS if c[0] in RESERVED_NAMES]
)
def test_a_reservation_check_blocks_exactly_the_origins_it_applies_to(
    real_store: Store, check: str, origin: Origin, applies: bool
) -> None:
    env = _occupy(real_store, check)
    s = settings(**{"BLACKOUT_WINDOWS": "none", **env})
    t = trigger_of()
    verdict = decide(t, good_facts(s, t), s, origin)
    assert verdict.plan is not None
    if origin == Origin.APPROVAL:
        _pending_record(real_store, "rb-now")
    answer = reserve(real_store, s, t, origin, "rb-now", verdict.plan)
    assert (answer.reason == check) is applies, answer
    if not applies:
        assert answer.reason == "ok"


@pytest.mark.parametrize("origin", COLUMNS)
def test_only_an_alert_claims_and_dedupes_its_trigger_episode(origin: Origin) -> None:
    s = settings(BLACKOUT_WINDOWS="none")
    t = trigger_of()
    verdict = decide(t, good_facts(s, t), s, origin)
    assert verdict.plan is not None
    assert verdict.plan.claims_episode is (origin == Origin.ALERT)
    assert verdict.plan.force is (origin == Origin.MANUAL_FORCE)


def test_cooldown_and_both_rate_limits_share_their_origins_as_the_script_has_one_flag() -> None:
    assert origins_of("cooldown") == origins_of("rate_limit_hour") == origins_of("rate_limit_day")
