"""The decision engine alone: a pure function, every check in the contract's order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from receiver.config import Settings
from receiver.decide.facts import TargetFacts
from receiver.decide.policy import (
    Facts,
    Reservation,
    Verdict,
    classify,
    decide,
    resolve_target,
    settle,
)
from receiver.decide.vocabulary import Origin
from receiver.intake.payload import parse_alert
from tests.support import alert

ORDER = [
    "disabled",
    "tier_disabled",
    "no_target",
    "duplicate",
    "blackout",
    "silenced",
    "already_rolled_back",
    "no_recent_change",
    "autosync_enabled",
    "locked",
    "cooldown",
    "rate_limit_hour",
    "rate_limit_day",
    "global_limit",
    "approval",
    "dry_run",
]
WEEKDAY = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # a Wednesday
SATURDAY_NIGHT = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
BASE = {
    "SERVICE_NAME": "api",
    "GITOPS_REPO": "acme/gitops",
    "GITOPS_PATH": "k8s/api",
    "ALERTMANAGER_URL": "http://127.0.0.1:9093",
}


def decide_all(
    t: Any,
    facts: Facts,
    s: Settings,
    reservation: Reservation | None = Reservation("ok"),
    origin: Origin = Origin.ALERT,
) -> Verdict:
    """Decide, then settle the planned reservation with `reservation` (the Lua's answer)."""
    verdict = decide(t, facts, s, origin)
    if verdict.plan is not None and reservation is not None:
        return settle(verdict, reservation)
    return verdict


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def good_facts(s: Settings, trigger: Any, **changes: Any) -> Facts:
    base = dict(
        now=WEEKDAY,
        target=resolve_target(trigger, s),
        silenced=False,
        target_facts=TargetFacts(current="b", target="a", last_change_at=WEEKDAY.timestamp() - 600),
    )
    base.update(changes)
    return Facts(**base)


def trigger_of(**kwargs: Any) -> Any:
    return classify(parse_alert(alert(**kwargs), 0), settings())


# Each blocking condition, as (reason, settings env, fact changes).
BLOCKERS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "disabled": ({"ROLLBACK_ENABLED": "false"}, {}),
    "tier_disabled": ({"AUTO_ROLLBACK_EMERGENCY": "false"}, {}),
    "no_target": ({}, {"target": None}),
    "duplicate": ({}, {"duplicate_of": "rb-1"}),
    "blackout": ({"BLACKOUT_WINDOWS": "Sat,Sun 00:00-06:00 UTC"}, {"now": SATURDAY_NIGHT}),
    "silenced": ({}, {"silenced": True}),
    "already_rolled_back": (
        {},
        {
            "target_facts": TargetFacts(
                current="b", last_change_at=WEEKDAY.timestamp(), already_rolled_back=True
            )
        },
    ),
    "no_recent_change": (
        {},
        {"target_facts": TargetFacts(current="b", last_change_at=WEEKDAY.timestamp() - 3 * 86400)},
    ),
    "autosync_enabled": (
        {},
        {
            "target_facts": TargetFacts(
                current="b", last_change_at=WEEKDAY.timestamp(), autosync_blocks=True
            )
        },
    ),
    "locked": ({}, {"reservation": Reservation("locked")}),
    "cooldown": ({}, {"reservation": Reservation("cooldown")}),
    "rate_limit_hour": ({}, {"reservation": Reservation("rate_limit_hour")}),
    "rate_limit_day": ({}, {"reservation": Reservation("rate_limit_day")}),
    "global_limit": ({}, {"reservation": Reservation("global_limit")}),
    "approval": ({"REQUIRE_APPROVAL": "true"}, {}),
    "dry_run": ({"DRY_RUN": "true"}, {}),
}


def outcome(blockers: tuple[str, ...]) -> tuple[str, str]:
    env: dict[str, str] = {"BLACKOUT_WINDOWS": "none"}
    changes: dict[str, Any] = {}
    reservation_reasons = []
    for name in blockers:
        b_env, b_changes = BLOCKERS[name]
        env.update(b_env)
        if "reservation" in b_changes:
            b_changes = {}
            reservation_reasons.append(name)
        if not b_changes:
            continue
        if "target_facts" in b_changes and "target_facts" in changes:
            old, new = changes["target_facts"], b_changes["target_facts"]
            changes["target_facts"] = TargetFacts(
                current="b",
                last_change_at=min(old.last_change_at, new.last_change_at),
                already_rolled_back=old.already_rolled_back or new.already_rolled_back,
                autosync_blocks=old.autosync_blocks or new.autosync_blocks,
            )
        else:
            changes.update(b_changes)
    reservation = Reservation("ok")
    if reservation_reasons:  # the Lua script answers the first of its checks in order
        reservation = Reservation(min(reservation_reasons, key=ORDER.index))
    s = settings(**env)
    t = trigger_of()
    d = decide_all(t, good_facts(s, t, **changes), s, reservation)
    assert d.complete
    return d.decision, d.reason


def test_a_trigger_that_passes_every_check_rolls_back() -> None:
    assert outcome(()) == ("rollback", "passed")


@pytest.mark.parametrize("name", list(BLOCKERS))
def test_each_check_alone_blocks_with_its_own_reason(name: str) -> None:
    expected = {"approval": ("pending_approval", "approval_required")}.get(name, ("skipped", name))
    assert outcome((name,)) == expected


@pytest.mark.parametrize("pair", list(itertools.combinations(BLOCKERS, 2)))
def test_when_two_checks_block_the_earlier_one_in_the_contract_order_wins(
    pair: tuple[str, str],
) -> None:
    first = min(pair, key=ORDER.index)
    expected = {"approval": ("pending_approval", "approval_required")}.get(
        first, ("skipped", first)
    )
    assert outcome(pair) == expected


def test_resolved_alerts_and_other_alertnames_are_ignored() -> None:
    s = settings()
    resolved = trigger_of(status="resolved")
    assert decide_all(resolved, good_facts(s, resolved), s).reason == "resolved"
    other = classify(
        parse_alert(
            {**alert(alertname="DiskFull"), "labels": {"alertname": "DiskFull", "service": "api"}},
            0,
        ),
        s,
    )
    assert (decide_all(other, good_facts(s, other), s).decision, other.tier) == ("ignored", None)


def test_the_tier_comes_from_the_rollback_tier_label_or_the_alertname() -> None:
    s = settings()
    by_label = classify(parse_alert(alert(tier="critical", alertname="SLOAvailability"), 0), s)
    assert by_label.tier == "critical"
    raw = alert(alertname="TriggerCriticalRollback")
    raw["labels"].pop("rollback_tier")
    assert classify(parse_alert(raw, 0), s).tier == "critical"


def test_a_critical_trigger_obeys_its_own_switch() -> None:
    s = settings(AUTO_ROLLBACK_CRITICAL="false")
    t = trigger_of(tier="critical")
    assert decide_all(t, good_facts(s, t), s).reason == "tier_disabled"
    e = trigger_of(tier="emergency")
    assert decide_all(e, good_facts(s, e), s).reason == "passed"


def test_the_engine_asks_for_each_costly_fact_only_when_a_check_needs_it() -> None:
    s = settings()
    t = trigger_of()
    facts = Facts(now=WEEKDAY, target=resolve_target(t, s))
    assert decide_all(t, facts, s).needs == "silenced"
    facts = Facts(now=WEEKDAY, target=resolve_target(t, s), silenced=False)
    assert decide_all(t, facts, s).needs == "target_facts"
    planned = decide(t, good_facts(s, t), s, Origin.ALERT)
    assert planned.needs is None and planned.plan is not None  # the reservation comes next
    blocked = Facts(now=WEEKDAY, target=None)
    assert decide_all(t, blocked, s).needs is None  # no_target blocks before any I/O


def test_no_silence_look_up_without_alertmanager_url() -> None:
    s = Settings.from_env({k: v for k, v in BASE.items() if k != "ALERTMANAGER_URL"})
    t = trigger_of()
    d = decide_all(t, Facts(now=WEEKDAY, target=resolve_target(t, s)), s)
    assert d.needs == "target_facts"


def test_change_correlation_can_be_disabled() -> None:
    s = settings(ROLLBACK_CHANGE_WINDOW="0")
    t = trigger_of()
    old = TargetFacts(current="b", last_change_at=None)
    assert decide_all(t, good_facts(s, t, target_facts=old), s).reason == "passed"


def test_a_manual_rollback_skips_blackout_change_correlation_and_approval() -> None:
    s = settings(
        BLACKOUT_WINDOWS="Sat,Sun 00:00-06:00 UTC",
        REQUIRE_APPROVAL="true",
        ROLLBACK_ENABLED="false",
    )
    t = trigger_of()
    facts = good_facts(s, t, now=SATURDAY_NIGHT, target_facts=TargetFacts(already_rolled_back=True))
    assert decide_all(t, facts, s, origin=Origin.MANUAL).reason == "passed"
    locked = good_facts(s, t)
    assert decide_all(t, locked, s, Reservation("locked"), Origin.MANUAL).reason == "locked"


def test_every_check_is_reported_in_order_for_explain() -> None:
    s = settings(DRY_RUN="true")
    t = trigger_of()
    d = decide_all(t, good_facts(s, t), s)
    names = [c.name for c in d.checks]
    assert names == [
        "disabled",
        "tier_disabled",
        "no_target",
        "duplicate",
        "blackout",
        "silenced",
        "already_rolled_back",
        "no_recent_change",
        "autosync_enabled",
        "reservation",
        "approval",
        "dry_run",
    ]
    assert [c.passed for c in d.checks][-1] is False


def test_alert_labels_override_the_gitops_path_within_the_services_folder() -> None:
    s = settings(ARGOCD_APP_NAME="api-prod")
    t = classify(parse_alert(alert(argocd_app="api-prod", gitops_path="k8s/api/canary/"), 0), s)
    target = resolve_target(t, s)
    assert target is not None and target.gitops is not None
    assert (target.argocd_app, target.gitops.path) == ("api-prod", "k8s/api/canary")
    sibling = classify(parse_alert(alert(gitops_path="k8s/billing"), 0), s)
    assert resolve_target(sibling, s) is None
