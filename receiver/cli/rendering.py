"""Text for people: the history table, status blocks, replayed checks and the audit trail.

Pure functions of the receiver's JSON answers (`--json` prints those answers as they are).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

SHORT = 12  # characters of a commit or revision shown in tables
HISTORY_HEADER = (
    "ID",
    "CREATED (UTC)",
    "SERVICE",
    "ALERTNAME",
    "TIER",
    "STATE",
    "REASON",
    "FROM",
    "TO",
    "ACTOR",
)
STATUS_FIELDS = frozenset(
    {
        "service",
        "enabled",
        "locked_by",
        "cooldown_seconds_left",
        "rollbacks_last_hour",
        "rollbacks_last_day",
        "limits",
        "blackout",
        "last_rollback",
        "last_skip",
        "argocd_autosync_disabled",
    }
)


def short(value: object) -> str:
    """A commit or revision cut to table width; "-" for nothing."""
    return str(value)[:SHORT] if value not in (None, "") else "-"


def live_before(record: Mapping[str, Any]) -> str:
    """What was live when the rollback was decided (the version rolled back from)."""
    was = record.get("rolled_back_from") or {}
    return short(was.get("commit") or was.get("revision"))


def restores(record: Mapping[str, Any]) -> str:
    """What the rollback restores (or would restore): the target commit, else the revision."""
    target = record.get("target") or {}
    return short(target.get("commit") or target.get("revision") or target.get("argocd_revision"))


def alertname_of(record: Mapping[str, Any]) -> str:
    """The trigger's alertname ("Manual" for manual rollbacks)."""
    labels = (record.get("trigger") or {}).get("labels") or {}
    return str(labels.get("alertname") or "-")


def state_of(record: Mapping[str, Any]) -> str:
    """The record's state, with "not effective" when it completed but errors did not fall."""
    state = str(record.get("state", "-"))
    return f"{state}, not effective" if record.get("not_effective") else state


def _created(record: Mapping[str, Any]) -> str:
    text = str(record.get("created_at", "-"))
    return text.replace("T", " ").split(".")[0].removesuffix("Z")


def describe_record(record: Mapping[str, Any]) -> str:
    """One line for one record, every value labelled."""
    return (
        f"{record['id']} {record['service']} {record.get('tier', '-')} {state_of(record)} "
        f"({record.get('reason', '-')}) from {live_before(record)} to {restores(record)} "
        f"by {record.get('actor', '-')}"
    )


def describe_skip(record: Mapping[str, Any]) -> str:
    """One line for the newest skip: its reason, when, and how often it repeated since."""
    repeats = int(record.get("repeats") or 0)
    seen = f", {repeats} repeat(s), last {record.get('last_seen_at')}" if repeats else ""
    return f"{record['id']} {record.get('reason', '-')} at {record.get('created_at')}{seen}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, the header first."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def history_table(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The history as a table: one meaning per column, FROM what was live, TO what it restores."""
    rows = [
        (
            str(r["id"]),
            _created(r),
            str(r["service"]),
            alertname_of(r),
            str(r.get("tier", "-")),
            state_of(r),
            str(r.get("reason", "-")),
            live_before(r),
            restores(r),
            str(r.get("actor", "-")),
        )
        for r in records
    ]
    return table(HISTORY_HEADER, rows)


def audit_lines(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The operator trail as a table: when, who, what, and the details."""
    rows = []
    for entry in entries:
        rest = {k: v for k, v in entry.items() if k not in ("at", "actor", "action")}
        details = " ".join(f"{k}={v}" for k, v in sorted(rest.items()))
        rows.append((str(entry["at"]), str(entry["actor"]), str(entry["action"]), details))
    return table(("AT (UTC)", "ACTOR", "ACTION", "DETAILS"), rows)


def _blackout_lines(blackout: Mapping[str, Any]) -> list[str]:
    """The recurring window and the Alertmanager silence holding the service, or "none"."""
    lines = []
    if blackout.get("active"):
        lines.append(f"window {blackout['active']} (BLACKOUT_WINDOWS)")
    if blackout.get("silence"):
        lines.append(f"silence: {blackout['silence']}")
    if lines:
        return lines
    upcoming = blackout.get("next") or []
    return [f"none (next window starts {upcoming[0]})" if upcoming else "none"]


def status_lines(services: Sequence[Mapping[str, Any]]) -> list[str]:
    """One block per service; fields the receiver adds later are shown as JSON at the end."""
    lines: list[str] = []
    for s in services:
        limits = s.get("limits") or {}
        last = s.get("last_rollback")
        fields: list[tuple[str, str]] = [
            ("rollbacks", "enabled" if s.get("enabled", True) else "disabled (ROLLBACK_ENABLED)"),
            ("lock", f"held by {s['locked_by']}" if s.get("locked_by") else "free"),
            ("cooldown left", f"{s.get('cooldown_seconds_left', 0)}s"),
            ("last hour", f"{s.get('rollbacks_last_hour')} of {limits.get('per_hour', '-')}"),
            ("last day", f"{s.get('rollbacks_last_day')} of {limits.get('per_day', '-')}"),
        ]
        fields += [("blackout", line) for line in _blackout_lines(s.get("blackout") or {})]
        fields.append(("last rollback", describe_record(last) if last else "-"))
        off = s.get("argocd_autosync_disabled")
        if off:
            fields.append(
                (
                    "argo cd",
                    f"auto-sync of {off.get('app')} OFF since {off.get('since')} "
                    f"(turned off by {off.get('rollback_id')}): re-enable it",
                )
            )
        skip = s.get("last_skip")
        fields.append(("last skip", describe_skip(skip) if skip else "-"))
        fields += [
            (key.replace("_", " "), json.dumps(value, sort_keys=True))
            for key, value in sorted(s.items())
            if key not in STATUS_FIELDS
        ]
        lines.append(str(s["service"]))
        previous = ""
        for name, value in fields:
            label = "" if name == previous else name
            lines.append(f"  {label:<14} {value}")
            previous = name
    return lines


def replay_lines(alerts: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each replayed alert's decision, then every check: pass, BLOCK or n/a (not evaluated)."""
    lines = []
    for alert in alerts:
        lines.append(
            f"{alert['alertname']} {alert['service']} ({alert['fingerprint']}): "
            f"{alert['decision']} / {alert['reason']}"
        )
        for check in alert.get("checks", ()):
            mark = {True: "pass", False: "BLOCK"}.get(check.get("passed"), "n/a")
            lines.append(f"  {mark:<5} {check['check']:<20} {check.get('detail', '')}")
    return lines
