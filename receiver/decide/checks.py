"""The checks of the contract's table, each a pure function of (trigger, facts, settings).

A check that needs a costly fact not gathered yet raises `NeedFact`; `policy.decide`
turns that into `needs=<fact>` so the pipeline gathers it and decides again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from receiver.config import Settings
from receiver.decide import targets
from receiver.decide.blackout import active_window
from receiver.decide.facts import TargetFacts
from receiver.decide.targets import ServiceTarget, TargetResolution
from receiver.intake.payload import Alert
from receiver.intake.validity import READ_LABELS, first_unusable_field, shown_alert

TRIGGER_ALERTNAMES = {
    "TriggerCriticalRollback": "critical",
    "TriggerEmergencyRollback": "emergency",
}
TIERS = ("critical", "emergency")
# The `service` label value of metrics and the history index for alerts that are not a
# configured service: bounded cardinality whatever senders put in their labels.
INVALID_SERVICE = "_invalid"
UNCONFIGURED_SERVICE = "_unconfigured"


@dataclass(frozen=True)
class Trigger:
    """A firing alert the receiver may act on, with the labels it reads."""

    alert: Alert
    service: str
    namespace: str
    tier: str | None  # None: not a trigger
    unusable: str | None = None  # why the alert cannot be used (`invalid_alert`), if it cannot
    raw_digest: str = ""  # of an unusable alert's identity, for its episode

    @property
    def fingerprint(self) -> str:
        return self.alert.fingerprint

    @property
    def alertname(self) -> str:
        return self.alert.alertname

    @property
    def episode(self) -> str:
        """One trigger episode: fingerprint + startsAt + tier (contract, "Decisions")."""
        if self.unusable is not None:
            return f"invalid:{self.raw_digest}:{self.tier}"
        return f"{self.alert.fingerprint}:{self.alert.starts_at}:{self.tier}"


def trigger_kind(labels: Mapping[str, str], settings: Settings) -> tuple[str | None, str]:
    """An alert's tier (None: not a trigger) and the label naming its service."""
    # The shipped kind first (a rollback_tier label, then the two trigger alertnames, both
    # with the service in `service`); else the first `triggers:` entry whose match holds.
    tier = labels.get("rollback_tier")
    if tier in TIERS:
        return tier, "service"
    named = TRIGGER_ALERTNAMES.get(labels.get("alertname", ""))
    if named is not None:
        return named, "service"
    for rule in settings.triggers:
        if rule.matches(labels):
            return rule.tier, rule.service_label
    return None, "service"


def service_label_value(labels: Mapping[str, str], settings: Settings) -> str:
    """The raw value of the label an alert's trigger kind reads its service from ("" if none)."""
    return labels.get(trigger_kind(labels, settings)[1], "")


def read_labels(settings: Settings) -> tuple[str, ...]:
    """Every label the receiver reads: the contract's, and each `triggers:` entry's."""
    rules = settings.triggers
    extra = [r.service_label for r in rules] + [m.label for r in rules for m in r.match]
    return READ_LABELS + tuple(dict.fromkeys(extra))


def classify(alert: Alert, settings: Settings) -> Trigger:
    """Read tier, service and namespace from an alert's labels; mark an unusable alert."""
    labels = alert.labels
    # Bounded first: the `triggers:` regexes run only on labels that passed this check.
    problem = first_unusable_field(alert, read_labels(settings))
    if problem is not None:
        tier = labels.get("rollback_tier")
        tier = tier if tier in TIERS else TRIGGER_ALERTNAMES.get(alert.alertname)
        identity = f"{alert.fingerprint}\0{alert.starts_at}".encode("utf-8", "surrogatepass")
        return Trigger(
            alert=shown_alert(alert),
            service=INVALID_SERVICE,
            namespace=settings.namespace,
            tier=tier if alert.firing else None,  # resolved: ignored, nothing to cancel
            unusable=problem,
            raw_digest=hashlib.sha256(identity).hexdigest()[:32],
        )
    tier, service_label = trigger_kind(labels, settings)
    return Trigger(
        alert=alert,
        service=labels.get(service_label) or settings.service_name,
        namespace=labels.get("namespace") or settings.namespace,
        tier=tier,
    )


def silence_labels(trigger: Trigger) -> dict[str, str]:
    """The labels the silence re-check matches: the alert's plus its derived rollback_tier."""
    labels = dict(trigger.alert.labels)
    if trigger.tier is not None:
        labels.setdefault("rollback_tier", trigger.tier)
    return labels


def looks_like_emergency(alert: Alert) -> bool:
    """Whether a firing alert names the emergency tier, whatever else it carries."""
    labels = alert.labels
    emergency = labels.get("rollback_tier") == "emergency"
    emergency |= alert.alertname == "TriggerEmergencyRollback"
    return alert.firing and emergency


def counted_service(trigger: Trigger, settings: Settings) -> str:
    """The service a decision is counted and indexed under: `_invalid`, `_unconfigured` or it."""
    if trigger.unusable is not None:
        return INVALID_SERVICE
    return shared_index_of(trigger.service, settings) or trigger.service


def shared_index_of(service: str, settings: Settings) -> str | None:
    """The shared name (`_invalid`, `_unconfigured`) a service's records are kept under, if any."""
    if service in (INVALID_SERVICE, UNCONFIGURED_SERVICE):
        return service
    if service in settings.services or service == settings.service_name:
        return None
    return UNCONFIGURED_SERVICE


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
