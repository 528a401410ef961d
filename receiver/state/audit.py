"""The audit trail: who did what (approvals, rejections, manual rollbacks, blackouts)."""

from __future__ import annotations

import logging
from typing import Any

from receiver.state.history import iso
from receiver.state.store import Store

log = logging.getLogger("receiver.audit")

# Actions the CLI records for what it did outside the receiver (blackouts are silences).
CLI_ACTIONS = ("blackout_created", "blackout_ended")


def record_action(store: Store, actor: str, action: str, **details: Any) -> dict[str, Any]:
    """One operator action into the audit trail (Redis) and the log."""
    entry = {"at": iso(), "actor": actor, "action": action, **details}
    store.add_audit(entry)
    log.info(f"audit: {action}", extra={"audit": True, **entry})
    return entry


def recent_actions(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Operator actions, newest first."""
    return store.list_audit(limit)
