"""Argo CD apps whose automated sync the receiver turned off (ARGOCD_DISABLE_AUTOSYNC).

KEYS: `autosync_disabled` hash, app -> JSON {since, rollback_id}. Written when a rollback
patched the app's automated sync off, removed once the receiver sees it on again; read at
scrape time for `rollback_argocd_autosync_disabled{app}` and by `status`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from receiver.state.reservation import decode
from receiver.state.store import Store


def _key(store: Store) -> str:
    return store.key("autosync_disabled")


def mark_disabled(store: Store, app: str, rollback_id: str, since: float | None = None) -> None:
    """Remember that the receiver turned `app`'s automated sync off (first time kept)."""
    entry = {"since": time.time() if since is None else since, "rollback_id": rollback_id}
    with store.guarded():
        store.client.hsetnx(_key(store), app, json.dumps(entry))


def clear(store: Store, app: str) -> bool:
    """Forget `app` (its automated sync is on again); True when it was remembered."""
    with store.guarded():
        return bool(store.client.hdel(_key(store), app))


def disabled_apps(store: Store) -> dict[str, dict[str, Any]]:
    """Every app the receiver left with automated sync off: {since, rollback_id}."""
    with store.guarded():
        raw = store.client.hgetall(_key(store))
    apps: dict[str, dict[str, Any]] = {}
    for app, value in raw.items():
        try:
            apps[decode(app)] = dict(json.loads(decode(value)))
        except (ValueError, TypeError):
            apps[decode(app)] = {"since": None, "rollback_id": None}
    return apps
