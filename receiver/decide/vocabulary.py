"""The decision vocabulary: where a rollback comes from, what was decided and why.

One place each; the values are the contract's strings ("Decisions" and the
`rollback_skipped_total{reason}` label), so a `StrEnum` member is the string.
"""

from __future__ import annotations

from enum import StrEnum


class Origin(StrEnum):
    """Where a rollback comes from: it selects which checks apply (contract, "Decisions")."""

    ALERT = "alert"  # the webhook, `monitor`, `replay`/explain
    APPROVAL = "approval"  # an operator's approval or a passed veto deadline
    MANUAL = "manual"
    MANUAL_FORCE = "manual_force"


class Decision(StrEnum):
    """The `decision` field of an answer and of a record."""

    ROLLBACK = "rollback"
    PENDING_APPROVAL = "pending_approval"
    IGNORED = "ignored"
    SKIPPED = "skipped"


class Reason(StrEnum):
    """The `reason` of a decision that is not `skipped`."""

    PASSED = "passed"
    APPROVAL_REQUIRED = "approval_required"
    RESOLVED = "resolved"
    NOT_A_TRIGGER = "not_a_trigger"


class SkipReason(StrEnum):
    """The `reason` of a `skipped` decision: the `reason` label of rollback_skipped_total."""

    DISABLED = "disabled"
    TIER_DISABLED = "tier_disabled"
    DRY_RUN = "dry_run"
    DUPLICATE = "duplicate"
    LOCKED = "locked"
    COOLDOWN = "cooldown"
    RATE_LIMIT_HOUR = "rate_limit_hour"
    RATE_LIMIT_DAY = "rate_limit_day"
    BLACKOUT = "blackout"
    SILENCED = "silenced"
    APPROVAL_EXPIRED = "approval_expired"
    REJECTED = "rejected"
    ALREADY_ROLLED_BACK = "already_rolled_back"
    NO_RECENT_CHANGE = "no_recent_change"
    AUTOSYNC_ENABLED = "autosync_enabled"
    GLOBAL_LIMIT = "global_limit"
    NO_TARGET = "no_target"
    INVALID_ALERT = "invalid_alert"
    INTERNAL_ERROR = "internal_error"
    RESOLVED = "resolved"  # a resolved alert cancelled its pending rollback


# Reasons that page someone: the trigger was real but rolling back would not help.
ESCALATING_REASONS = frozenset(
    {SkipReason.ALREADY_ROLLED_BACK, SkipReason.NO_RECENT_CHANGE, SkipReason.GLOBAL_LIMIT}
)

# Reasons that hold back an emergency: that is news even though nothing happened.
SAFETY_REASONS = frozenset(
    {
        SkipReason.BLACKOUT,
        SkipReason.SILENCED,
        SkipReason.LOCKED,
        SkipReason.COOLDOWN,
        SkipReason.RATE_LIMIT_HOUR,
        SkipReason.RATE_LIMIT_DAY,
        SkipReason.TIER_DISABLED,
        SkipReason.DISABLED,
        SkipReason.AUTOSYNC_ENABLED,
        SkipReason.NO_TARGET,
        SkipReason.INVALID_ALERT,  # a real emergency with a junk label must reach a human
        SkipReason.INTERNAL_ERROR,
    }
)

# The `reason` label values metrics pre-create per service (the contract's list).
METRIC_SKIP_REASONS = tuple(r for r in SkipReason if r is not SkipReason.RESOLVED)

__all__ = [
    "ESCALATING_REASONS",
    "METRIC_SKIP_REASONS",
    "SAFETY_REASONS",
    "Decision",
    "Origin",
    "Reason",
    "SkipReason",
]
