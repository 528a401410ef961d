"""`triggers:` entries: classification, the labels the silence re-check matches, monitor."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from receiver.config import Settings
from receiver.decide.facts import TargetFacts
from receiver.decide.policy import (
    Facts,
    classify,
    decide,
    resolve_target,
    service_label_value,
    silence_labels,
)
from receiver.decide.targets import parse_rollback_config
from receiver.decide.vocabulary import Origin
from receiver.gathering import check_silence
from receiver.intake.payload import parse_alert
from receiver.monitor import is_firing_trigger
from tests.test_policy import BASE, WEEKDAY

TRIGGERS = {
    "triggers": [
        {
            "match": {"sloth_severity": "page"},
            "tier": "emergency",
            "service_label": "sloth_service",
        },
        {"match": {"alertname": "ErrorBudgetBurn", "severity": "~crit(ical)?"}, "tier": "critical"},
    ]
}


def settings_with_triggers(**config: Any) -> Settings:
    rules = parse_rollback_config(config or TRIGGERS, "production", "main").triggers
    return replace(Settings.from_env(dict(BASE)), triggers=rules)


def alert_with(**labels: str) -> Any:
    raw = {
        "status": "firing",
        "labels": labels,
        "annotations": {},
        "startsAt": "2026-11-25T02:55:00Z",
        "fingerprint": "f1",
    }
    return parse_alert(raw, 0)


def test_a_sloth_page_alert_is_an_emergency_of_the_service_in_sloth_service() -> None:
    s = settings_with_triggers()
    t = classify(
        alert_with(alertname="SLOAvailability", sloth_severity="page", sloth_service="api"), s
    )
    assert (t.tier, t.service, t.namespace) == ("emergency", "api", "production")


def test_a_pyrra_burn_alert_is_critical_and_its_regex_is_a_full_match() -> None:
    s = settings_with_triggers()
    hit = classify(alert_with(alertname="ErrorBudgetBurn", severity="critical", service="api"), s)
    short = classify(alert_with(alertname="ErrorBudgetBurn", severity="crit", service="api"), s)
    partial = classify(alert_with(alertname="ErrorBudgetBurn", severity="critically"), s)
    assert (hit.tier, hit.service, short.tier) == ("critical", "api", "critical")
    assert partial.tier is None


def test_an_alert_no_entry_matches_is_not_a_trigger() -> None:
    s = settings_with_triggers()
    ticket = classify(alert_with(sloth_severity="ticket", sloth_service="api"), s)
    verdict = decide(ticket, Facts(now=WEEKDAY), s, Origin.ALERT)
    assert (ticket.tier, verdict.decision, verdict.reason) == (None, "ignored", "not_a_trigger")


def test_without_triggers_a_sloth_alert_is_ignored() -> None:
    s = Settings.from_env(dict(BASE))
    assert classify(alert_with(sloth_severity="page", sloth_service="api"), s).tier is None


def test_the_shipped_kind_wins_over_a_triggers_entry() -> None:
    """An alert carrying rollback_tier keeps its tier and reads its service from `service`."""
    s = settings_with_triggers()
    t = classify(
        alert_with(
            rollback_tier="critical", sloth_severity="page", sloth_service="x", service="api"
        ),
        s,
    )
    assert (t.tier, t.service) == ("critical", "api")


def test_first_matching_entry_wins_and_a_missing_service_label_falls_back() -> None:
    s = settings_with_triggers(
        triggers=[
            {"match": {"team": "pay"}, "tier": "critical", "service_label": "app"},
            {"match": {"team": "~.+"}, "tier": "emergency"},
        ]
    )
    first = classify(alert_with(team="pay", app="api"), s)
    fallback = classify(alert_with(team="pay"), s)
    second = classify(alert_with(team="web", service="web"), s)
    assert (first.tier, first.service) == ("critical", "api")
    assert fallback.service == "api"  # SERVICE_NAME, as for the shipped labels
    assert (second.tier, second.service) == ("emergency", "web")
    assert service_label_value(first.alert.labels, s) == "api"
    assert service_label_value(fallback.alert.labels, s) == ""


def test_a_mapped_sloth_alert_reaches_the_service_target() -> None:
    s = settings_with_triggers()
    t = classify(alert_with(sloth_severity="page", sloth_service="api"), s)
    facts = Facts(
        now=WEEKDAY,
        target=resolve_target(t, s),
        silenced=False,
        target_facts=TargetFacts(current="b", target="a", last_change_at=WEEKDAY.timestamp() - 60),
    )
    verdict = decide(t, facts, s, Origin.ALERT)
    assert verdict.plan is not None and verdict.plan.decision == "rollback"


def test_the_silence_recheck_sees_the_derived_rollback_tier() -> None:
    s = settings_with_triggers()
    t = classify(alert_with(sloth_severity="page", sloth_service="api"), s)
    asked: list[dict[str, str]] = []

    def silences(labels: dict[str, str]) -> tuple[bool, str]:
        asked.append(labels)
        return labels.get("rollback_tier") == "emergency", "blackout b1"

    facts = check_silence(silences, t, Facts(now=WEEKDAY))
    assert facts.silenced is True
    assert asked == [
        {"sloth_severity": "page", "sloth_service": "api", "rollback_tier": "emergency"}
    ]


def test_silence_labels_keep_an_alerts_own_rollback_tier() -> None:
    s = settings_with_triggers()
    own = classify(alert_with(alertname="TriggerCriticalRollback", rollback_tier="critical"), s)
    ignored = classify(alert_with(alertname="DiskFull"), s)
    assert silence_labels(own)["rollback_tier"] == "critical"
    assert "rollback_tier" not in silence_labels(ignored)


def test_monitor_picks_up_firing_alerts_a_triggers_entry_matches() -> None:
    s = settings_with_triggers()
    page = {"state": "firing", "labels": {"sloth_severity": "page", "sloth_service": "api"}}
    pending = {**page, "state": "pending"}
    assert is_firing_trigger(page, s)
    assert not is_firing_trigger(page)  # without settings: the shipped kind only
    assert not is_firing_trigger(pending, s)
