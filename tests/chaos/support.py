"""Helpers of the chaos tests: a ROLLBACK_CONFIG of many services, firing one alert."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from receiver.intake.payload import parse_alert
from receiver.pipeline import Engine, Outcome
from tests.support import alert


def write_config(path: Path, services: Mapping[str, Mapping[str, str]]) -> str:
    """A ROLLBACK_CONFIG file: each service with `repo`, `path`, `branch`, and/or `app`."""
    lines = ["services:"]
    for name, where in services.items():
        lines.append(f"  {name}:")
        if "path" in where:
            repo, branch = where.get("repo", "acme/gitops"), where.get("branch", "main")
            lines.append(f"    gitops: {{repo: {repo}, path: {where['path']}, branch: {branch}}}")
        if "app" in where:
            lines.append(f"    argocd: {{app: {where['app']}}}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def fire(engine: Engine, service: str, **labels: Any) -> Outcome:
    """One firing emergency trigger of `service` (its own fingerprint) through the engine."""
    raw = alert(service, fingerprint=f"fp-{service}", **labels)
    return engine.handle_alert(parse_alert(raw, 0))
