"""The checks of the contract's table, each a pure function of (trigger, facts, settings).

A check that needs a costly fact not gathered yet raises `NeedFact`; `policy.decide`
turns that into `needs=<fact>` so the pipeline gathers it and decides again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from receiver.config import Settings
from receiver.decide import targets
from receiver.decide.blackout import active_window
from receiver.decide.facts import TargetFacts
from receiver.decide.targets import ServiceTarget, TargetResolution
from receiver.intake.payload import Alert

TRIGGER_ALERTNAMES = {
    "TriggerCriticalRollback": "critical",
    "TriggerEmergencyRollback": "emergency",
}
TIERS = ("critical", "emergency")


@dataclass(frozen=True)
class Trigger:
    """A firing alert the receiver may act on, with the labels it reads."""

    alert: Alert
    service: str
    namespace: str
    tier: str | None  # None: not a trigger

    @property
    def fingerprint(self) -> str:
        return self.alert.fingerprint

    @property
    def alertname(self) -> str:
        return self.alert.alertname

    @property
    def episode(self) -> str:
        """One trigger episode: fingerprint + startsAt + tier (contract, "Decisions")."""
        return f"{self.alert.fingerprint}:{self.alert.starts_at}:{self.tier}"


def classify(alert: Alert, settings: Settings) -> Trigger:
    """Read service, namespace and tier from an alert's labels."""
    labels = alert.labels
    tier = labels.get("rollback_tier")
    if tier not in TIERS:
        tier = TRIGGER_ALERTNAMES.get(alert.alertname)
    return Trigger(
        alert=alert,
        service=labels.get("service") or settings.service_name,
        namespace=labels.get("namespace") or settings.namespace,
        tier=tier,
    )


def resolve_target(trigger: Trigger, settings: Settings) -> ServiceTarget | None:
    """The service's target with the alert's bounded overrides; None says `target_reason`."""
    return target_resolution(trigger, settings).target


def target_resolution(trigger: Trigger, settings: Settings) -> TargetResolution:
    """The service's target with the alert's bounded overrides, or None and the reason."""
    return targets.resolve_target(settings.services, trigger.service, trigger.alert.labels)


@dataclass(frozen=True)
class Facts:
    """What the pipeline read before deciding; `None` means "not gathered yet"."""

    now: datetime
    duplicate_of: str | None = None  # the rollback id an earlier delivery of the episode got
    target: ServiceTarget | None = None
    silenced: bool | None = None
    silence_note: str = ""
    target_facts: TargetFacts | None = None
    target_error: str | None = None
    dry_run: bool = False  # a request's own dry_run (manual API/CLI)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: not evaluated (explain, a fact that cannot be read)
    detail: str


class NeedFact(Exception):
    """A check needs a fact the pipeline has not gathered yet."""

    def __init__(self, fact: str) -> None:
        self.fact = fact


CheckFn = Callable[[Trigger, Facts, Settings], Check]


def disabled(t: Trigger, f: Facts, s: Settings) -> Check:
    return Check(
        "disabled", s.rollback_enabled, "ROLLBACK_ENABLED=" + str(s.rollback_enabled).lower()
    )


def tier_disabled(t: Trigger, f: Facts, s: Settings) -> Check:
    enabled = {"critical": s.auto_rollback_critical, "emergency": s.auto_rollback_emergency}
    on = enabled.get(t.tier or "", False)
    var = f"AUTO_ROLLBACK_{(t.tier or '').upper()}"
    return Check("tier_disabled", on, f"{var}={str(on).lower()}")


def no_target(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.target is None:
        detail = f.target_error or f"no GitOps repo or Argo CD app configured for {t.service}"
        return Check("no_target", False, detail)
    if f.target_error is not None:
        return Check("no_target", False, f.target_error)
    return Check("no_target", True, f.target.describe())


def duplicate(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.duplicate_of:
        return Check("duplicate", False, f"episode already handled as {f.duplicate_of}")
    return Check("duplicate", True, "first delivery of this episode")


def blackout(t: Trigger, f: Facts, s: Settings) -> Check:
    window = active_window(s.blackout_windows, f.now)
    if window is not None:
        return Check("blackout", False, f"inside blackout window {window.describe()}")
    return Check("blackout", True, "outside blackout windows")


def silenced(t: Trigger, f: Facts, s: Settings) -> Check:
    if not s.alertmanager_url:
        return Check("silenced", True, "ALERTMANAGER_URL not set; not re-checked")
    if f.silenced is None:
        raise NeedFact("silenced")
    return Check(
        "silenced",
        not f.silenced,
        f.silence_note or ("silenced" if f.silenced else "no matching silence"),
    )


def _target_facts(f: Facts) -> TargetFacts:
    if f.target_facts is None:
        raise NeedFact("target_facts")
    return f.target_facts


def already_rolled_back(t: Trigger, f: Facts, s: Settings) -> Check:
    facts = _target_facts(f)
    if facts.already_rolled_back:
        return Check(
            "already_rolled_back",
            False,
            f"{facts.current or 'the deployed version'} is itself a rollback by this receiver",
        )
    return Check(
        "already_rolled_back", True, f"{facts.current or 'current version'} is not a rollback"
    )


def no_recent_change(t: Trigger, f: Facts, s: Settings) -> Check:
    window = s.rollback_change_window_seconds
    if window <= 0:
        return Check("no_recent_change", True, "ROLLBACK_CHANGE_WINDOW=0 (disabled)")
    facts = _target_facts(f)
    if facts.last_change_at is None:
        return Check("no_recent_change", False, "no change found to blame")
    age = f.now.timestamp() - facts.last_change_at
    if age > window:
        return Check(
            "no_recent_change",
            False,
            f"newest change is {age / 3600:.1f}h old, older than ROLLBACK_CHANGE_WINDOW",
        )
    return Check("no_recent_change", True, f"newest change is {max(age, 0) / 60:.0f} min old")


def autosync(t: Trigger, f: Facts, s: Settings) -> Check:
    facts = _target_facts(f)
    if facts.autosync_blocks:
        return Check(
            "autosync_enabled",
            False,
            str(facts.details.get("autosync_message") or "")
            or "Argo CD auto-sync is on and refuses a rollback; set ARGOCD_DISABLE_AUTOSYNC=true "
            "or use ROLLBACK_MODE=both",
        )
    if "argocd_autosync" not in facts.details:  # no Argo CD step in this rollback
        return Check("autosync_enabled", True, "no Argo CD action in this rollback: not consulted")
    return Check("autosync_enabled", True, "Argo CD accepts the action")
