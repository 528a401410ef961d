"""The decision engine: a pure function from (trigger, facts, settings) to a decision.

The checks run in the contract's order and the first that blocks gives the
reason. Facts that cost I/O (an Alertmanager silence look-up, the backends'
`inspect`, the atomic Redis reservation) start as `None`: when a check needs
one, `decide` answers `needs=<fact>` and the pipeline gathers it and calls
again. So the order is fixed here, in one place, and nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
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

ROLLBACK = "rollback"
PENDING = "pending_approval"
IGNORED = "ignored"
SKIPPED = "skipped"

# Reasons that page someone: the trigger was real but rolling back would not help.
ESCALATING_REASONS = ("already_rolled_back", "no_recent_change", "global_limit")


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
class Reservation:
    """What the atomic reservation answered: `ok`, or the reason that blocked it."""

    reason: (
        str  # ok | duplicate | locked | cooldown | rate_limit_hour | rate_limit_day | global_limit
    )
    rollback_id: str | None = None  # the episode's original id for duplicate
    detail: str = ""


@dataclass(frozen=True)
class Facts:
    """What the pipeline knows; `None` means "not gathered yet"."""

    now: datetime
    duplicate_of: str | None = None  # the rollback id an earlier delivery of the episode got
    target: ServiceTarget | None = None
    silenced: bool | None = None
    silence_note: str = ""
    target_facts: TargetFacts | None = None
    target_error: str | None = None
    reservation: Reservation | None = None
    manual: bool = False
    force: bool = False
    dry_run: bool = False  # a request's own dry_run (manual API/CLI)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    decision: str  # rollback | pending_approval | ignored | skipped; "" while facts are needed
    reason: str
    checks: tuple[Check, ...] = ()
    needs: str | None = None  # silenced | target_facts | reservation
    rollback_id: str | None = None  # set for duplicate

    @property
    def complete(self) -> bool:
        return self.needs is None

    @property
    def escalates(self) -> bool:
        return self.decision == SKIPPED and self.reason in ESCALATING_REASONS


class _Need(Exception):
    def __init__(self, fact: str) -> None:
        self.fact = fact


CheckFn = Callable[[Trigger, Facts, Settings], Check]


def _disabled(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.manual:
        return Check("disabled", True, "manual rollback")
    return Check(
        "disabled", s.rollback_enabled, "ROLLBACK_ENABLED=" + str(s.rollback_enabled).lower()
    )


def _tier_disabled(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.manual:
        return Check("tier_disabled", True, "manual rollback")
    enabled = {"critical": s.auto_rollback_critical, "emergency": s.auto_rollback_emergency}
    on = enabled.get(t.tier or "", False)
    var = f"AUTO_ROLLBACK_{(t.tier or '').upper()}"
    return Check("tier_disabled", on, f"{var}={str(on).lower()}")


def _no_target(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.target is None:
        detail = f.target_error or f"no GitOps repo or Argo CD app configured for {t.service}"
        return Check("no_target", False, detail)
    if f.target_error is not None:
        return Check("no_target", False, f.target_error)
    return Check("no_target", True, f.target.describe())


def _duplicate(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.duplicate_of:
        return Check("duplicate", False, f"episode already handled as {f.duplicate_of}")
    return Check("duplicate", True, "first delivery of this episode")


def _blackout(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.manual:
        return Check("blackout", True, "manual rollback")
    window = active_window(s.blackout_windows, f.now)
    if window is not None:
        return Check("blackout", False, f"inside blackout window {window.describe()}")
    return Check("blackout", True, "outside blackout windows")


def _silenced(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.manual:
        return Check("silenced", True, "manual rollback")
    if not s.alertmanager_url:
        return Check("silenced", True, "ALERTMANAGER_URL not set; not re-checked")
    if f.silenced is None:
        raise _Need("silenced")
    return Check(
        "silenced",
        not f.silenced,
        f.silence_note or ("silenced" if f.silenced else "no matching silence"),
    )


def _target_facts(f: Facts) -> TargetFacts:
    if f.target_facts is None:
        raise _Need("target_facts")
    return f.target_facts


def _already_rolled_back(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.manual:
        return Check("already_rolled_back", True, "manual rollback")
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


def _no_recent_change(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.manual:
        return Check("no_recent_change", True, "manual rollback")
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


def _autosync(t: Trigger, f: Facts, s: Settings) -> Check:
    facts = _target_facts(f)
    if facts.autosync_blocks:
        return Check(
            "autosync_enabled",
            False,
            str(facts.details.get("autosync_message") or "")
            or "Argo CD auto-sync is on and refuses a rollback; set ARGOCD_DISABLE_AUTOSYNC=true "
            "or use ROLLBACK_MODE=both",
        )
    return Check("autosync_enabled", True, "Argo CD accepts the action")


def _reservation(t: Trigger, f: Facts, s: Settings) -> Check:
    if f.reservation is None:
        raise _Need("reservation")
    r = f.reservation
    return Check(
        r.reason if r.reason != "ok" else "reservation",
        r.reason == "ok",
        r.detail or ("lock, cooldown and rate limits passed" if r.reason == "ok" else r.reason),
    )


CHECKS: tuple[CheckFn, ...] = (
    _disabled,
    _tier_disabled,
    _no_target,
    _duplicate,
    _blackout,
    _silenced,
    _already_rolled_back,
    _no_recent_change,
    _autosync,
    _reservation,
)


def decide(trigger: Trigger, facts: Facts, settings: Settings) -> Decision:
    """Run every check in the contract's order; the first that blocks gives the reason."""
    if not trigger.alert.firing:
        return Decision(IGNORED, "resolved")
    if trigger.tier is None:
        return Decision(IGNORED, "not_a_trigger")
    checks: list[Check] = []
    for check_fn in CHECKS:
        try:
            check = check_fn(trigger, facts, settings)
        except _Need as need:
            return Decision("", "", tuple(checks), needs=need.fact)
        checks.append(check)
        if not check.passed:
            duplicate_id = facts.duplicate_of if check.name == "duplicate" else None
            if facts.reservation is not None and facts.reservation.reason == "duplicate":
                duplicate_id = facts.reservation.rollback_id
            return Decision(SKIPPED, check.name, tuple(checks), rollback_id=duplicate_id)
    if settings.require_approval and not facts.manual:
        checks.append(Check("approval", False, "REQUIRE_APPROVAL=true: waiting for approval"))
        return Decision(PENDING, "approval_required", tuple(checks))
    checks.append(Check("approval", True, "manual" if facts.manual else "not required"))
    if settings.dry_run or facts.dry_run:
        checks.append(Check("dry_run", False, "dry run: would roll back, changed nothing"))
        return Decision(SKIPPED, "dry_run", tuple(checks))
    checks.append(Check("dry_run", True, "DRY_RUN=false"))
    return Decision(ROLLBACK, "passed", tuple(checks))


def holds_only(settings: Settings, facts: Facts) -> bool:
    """Whether the reservation must only read (approval and dry run take no lock or slot)."""
    return (settings.require_approval and not facts.manual) or settings.dry_run or facts.dry_run


def with_fact(facts: Facts, **changes: object) -> Facts:
    return replace(facts, **changes)  # type: ignore[arg-type]


def explain(decision: Decision) -> list[dict[str, object]]:
    """Checks as plain dicts, for /api/v1/explain and `replay`."""
    return [{"check": c.name, "passed": c.passed, "detail": c.detail} for c in decision.checks]


__all__ = [
    "Check",
    "Decision",
    "Facts",
    "Reservation",
    "Trigger",
    "classify",
    "decide",
    "explain",
    "holds_only",
    "resolve_target",
    "target_resolution",
    "with_fact",
]
