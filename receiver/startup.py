"""Start-up summary: what each service would roll back, and setups that can never roll back."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from receiver.config import ServiceTarget, Settings

log = logging.getLogger("receiver.startup")

# `make run` (scripts/run-dev.sh) sets this: a dry run there is the point, not a mistake.
DEVELOPMENT_FLAG = "RECEIVER_DEV"


@dataclass(frozen=True)
class StartupNote:
    """One line of the start-up summary: an info line or a never-rolls-back warning."""

    level: Literal["info", "warning"]
    message: str


def redis_address(settings: Settings) -> str:
    """REDIS_URL's host:port (or the Sentinels'), never its credentials."""
    if settings.redis_sentinels:
        sentinels = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"sentinel {settings.redis_sentinel_master} via {sentinels}"
    if not settings.redis_url:
        return "embedded store"
    try:
        parts = urlsplit(settings.redis_url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "an unparsable REDIS_URL"
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    bracketed = f"[{host}]" if host and ":" in host else (host or "localhost")
    return f"{bracketed}:{port or 6379}"


def _describe(target: ServiceTarget, settings: Settings) -> str:
    gitops = target.gitops
    where = f"{gitops.repo} path {gitops.path} branch {gitops.branch}" if gitops else "none"
    blackout = "; ".join(w.describe() for w in settings.blackout_windows) or "none"
    return (
        f"service {target.service} (namespace {target.namespace}): gitops {where}, "
        f"argocd app {target.argocd_app or 'none'}, mode {settings.rollback_mode}, "
        f"dry run {str(settings.dry_run).lower()}, "
        f"approval {'required' if settings.require_approval else 'not required'}, "
        f"blackout windows {blackout}"
    )


def _never_rolls_back(target: ServiceTarget, settings: Settings) -> list[str]:
    """Why this service's rollbacks can never run, one reason a line (empty: they can)."""
    mode = settings.rollback_mode
    reasons = []
    if mode in ("gitops", "both") and target.gitops is None:
        if not settings.gitops_repo and not settings.rollback_config:
            reasons.append(f"GITOPS_REPO is unset: ROLLBACK_MODE={mode} needs a GitOps repository")
        elif settings.gitops_repo and not settings.gitops_path and not settings.rollback_config:
            reasons.append("GITOPS_REPO is set without GITOPS_PATH: nothing says what to restore")
        else:
            reasons.append(f"no GitOps repo/path configured: ROLLBACK_MODE={mode} needs one")
    if mode in ("argocd", "both") and not settings.argocd_server:
        reasons.append(f"ARGOCD_SERVER is unset: ROLLBACK_MODE={mode} needs Argo CD")
    if mode in ("argocd", "both") and settings.argocd_server and not target.argocd_app:
        reasons.append(f"no Argo CD app configured: ROLLBACK_MODE={mode} needs ARGOCD_APP_NAME")
    return reasons


def startup_summary(settings: Settings, development: bool = False) -> list[StartupNote]:
    """One info line per service and one warning per setup that can never roll back."""
    notes: list[StartupNote] = []
    # No configured service at all: show SERVICE_NAME's (empty) target, so its warnings appear.
    targets = dict(settings.services) or {settings.service_name: settings.default_target()}
    for name in sorted(targets):
        target = targets[name]
        notes.append(StartupNote("info", _describe(target, settings)))
        for reason in _never_rolls_back(target, settings):
            notes.append(StartupNote("warning", f"service {name} can never roll back: {reason}"))
    if settings.dry_run and not development:
        notes.append(
            StartupNote(
                "warning",
                "DRY_RUN=true: every rollback is decided and recorded, none is carried out",
            )
        )
    notes.append(StartupNote("info", f"state store: {redis_address(settings)}"))
    return notes


def log_startup(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Log the start-up summary once (info lines and never-rolls-back warnings)."""
    env = os.environ if environ is None else environ
    development = env.get(DEVELOPMENT_FLAG, "").strip().lower() in ("1", "true", "yes")
    for note in startup_summary(settings, development=development):
        if note.level == "warning":
            log.warning(note.message)
        else:
            log.info(note.message)
