"""Per-service targets: ROLLBACK_CONFIG, the bounded label overrides, and the trigger rules.

`load_rollback_config` reads the YAML file once at start (strict keys: a typo is an error
naming its place); `resolve_target` applies an alert's `gitops_path` / `argocd_app` labels
only inside the bounds the contract sets, so a label never retargets a rollback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from receiver.errors import ConfigError
from receiver.redaction import redact_userinfo

log = logging.getLogger("receiver.targets")

TIERS = ("critical", "emergency")
# How much of a refused label value a log line or check detail shows.
SHOWN_VALUE_CHARS = 80
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class GitOpsTarget:
    """A folder of manifests on one branch of one repository."""

    repo: str
    path: str
    branch: str = "main"

    def describe(self) -> str:
        """`repo:branch/path` with any credentials of a repo URL removed."""
        return f"{redact_userinfo(self.repo)}:{self.branch}/{self.path}"


@dataclass(frozen=True)
class ServiceTarget:
    """Where one service's manifests and Argo CD application live, and the overrides allowed."""

    service: str
    namespace: str
    gitops: GitOpsTarget | None
    argocd_app: str | None
    allowed_paths: tuple[str, ...] = ()
    allowed_apps: tuple[str, ...] = ()

    def safety_targets(self) -> tuple[str, ...]:
        """The ids whose lock, cooldown, limits and revision memory this service shares.

        `argocd:<app>` for the Argo CD application; `git:<repo>@<branch>:<path>` for the
        manifest folder (two folders conflict when one contains the other; the reservation
        script checks that, on `/` boundaries).
        The repo is named without URL credentials.
        """
        ids = []
        if self.argocd_app:
            ids.append(f"argocd:{self.argocd_app}")
        if self.gitops:
            ids.append(f"git:{self.git_scope()}:{self.gitops.path}")
        return tuple(ids)

    def git_scope(self) -> str | None:
        """`repo@branch` of the manifest folder (no URL credentials): where folders conflict."""
        g = self.gitops
        return f"{redact_userinfo(g.repo)}@{g.branch}" if g else None

    def describe(self) -> str:
        """A one-line description safe to record and show (no URL credentials)."""
        parts = []
        if self.gitops:
            parts.append(f"git {self.gitops.describe()}")
        if self.argocd_app:
            parts.append(f"argocd app {self.argocd_app}")
        return ", ".join(parts)


@dataclass(frozen=True)
class TargetResolution:
    """The target an alert resolves to, or None and the reason it has none."""

    target: ServiceTarget | None
    reason: str | None = None


@dataclass(frozen=True)
class LabelMatcher:
    """One `match:` entry: equality, or a full-match regex when the value starts with `~`."""

    label: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when the label (missing = empty, as in Prometheus) satisfies this entry."""
        given = labels.get(self.label, "")
        if self.pattern is not None:
            return self.pattern.fullmatch(given) is not None
        return given == self.value


@dataclass(frozen=True)
class TriggerRule:
    """A `triggers:` entry of ROLLBACK_CONFIG: which alerts act, at which tier, whose service."""

    match: tuple[LabelMatcher, ...]
    tier: str
    service_label: str = "service"

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every `match` entry holds for these alert labels."""
        return all(matcher.matches(labels) for matcher in self.match)


@dataclass(frozen=True)
class RollbackConfig:
    """What ROLLBACK_CONFIG holds: per-service targets and extra trigger rules."""

    services: Mapping[str, ServiceTarget] = field(default_factory=dict)
    triggers: tuple[TriggerRule, ...] = ()


def normalize_path(text: str) -> str:
    """The repository folder `text` names, as `a/b`; ValueError for the root, `..` or absolute."""
    # One normalisation for both GitOps providers and the override bounds: repeated and
    # trailing slashes and `.` segments go; `..` is refused rather than resolved, so no
    # label can climb out of a folder and back into another.
    if "\x00" in text or "\\" in text:
        raise ValueError("a NUL or backslash is not allowed in a path")
    if text.startswith("/"):
        raise ValueError("an absolute path is not allowed")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("'..' is not allowed in a path")
    if not parts:
        raise ValueError("the path names the whole repository")
    return "/".join(parts)


def path_is_within(path: str, folder: str) -> bool:
    """True when `path` is `folder` or inside it (`k8s/app-other` is not in `k8s/app`)."""
    return path == folder or path.startswith(folder + "/")


def _shown(value: str) -> str:
    if len(value) <= SHOWN_VALUE_CHARS:
        return repr(value)
    return repr(value[:SHOWN_VALUE_CHARS]) + f"... ({len(value)} characters)"


def _refuse(service: str, label: str, value: str, why: str) -> TargetResolution:
    reason = f"alert label {label}={_shown(value)} refused for {service}: {why}"
    log.warning(
        "label override refused",
        extra={"service": service[:SHOWN_VALUE_CHARS], "label": label, "reason": reason},
    )
    return TargetResolution(None, reason)


def resolve_target(
    services: Mapping[str, ServiceTarget], service: str, labels: Mapping[str, str]
) -> TargetResolution:
    """The service's target with the alert's `argocd_app` / `gitops_path` overrides, if allowed."""
    target = services.get(service)
    if target is None:
        return TargetResolution(None, f"no GitOps repo or Argo CD app configured for {service}")
    app = labels.get("argocd_app") or None
    raw_path = labels.get("gitops_path") or None
    if app is None and raw_path is None:  # no override: the configured target as it is
        return TargetResolution(target)
    if app is not None and app != target.argocd_app and app not in target.allowed_apps:
        why = "not the service's Argo CD app nor in its allowed_apps"
        return _refuse(service, "argocd_app", app, why)
    gitops = target.gitops
    if raw_path is not None:
        if gitops is None:
            return _refuse(service, "gitops_path", raw_path, "the service has no GitOps target")
        try:
            path = normalize_path(raw_path)
        except ValueError as exc:
            return _refuse(service, "gitops_path", raw_path, str(exc))
        if not path_is_within(path, gitops.path) and path not in target.allowed_paths:
            why = f"not {gitops.path}, inside it, nor in its allowed_paths"
            return _refuse(service, "gitops_path", raw_path, why)
        gitops = replace(gitops, path=path)
    return TargetResolution(replace(target, gitops=gitops, argocd_app=app or target.argocd_app))


# -- ROLLBACK_CONFIG ------------------------------------------------------------------------

_TOP_KEYS = ("services", "triggers")
_SERVICE_KEYS = ("namespace", "gitops", "argocd", "allowed_paths", "allowed_apps")
_GITOPS_KEYS = ("repo", "path", "branch")
_ARGOCD_KEYS = ("app",)
_TRIGGER_KEYS = ("match", "tier", "service_label")


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"ROLLBACK_CONFIG: {where} {problem}")


def _mapping(value: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """`value` as a mapping whose keys are all in `keys`; the first unknown key is named."""
    if not isinstance(value, dict):
        raise _fail(where, "must be a mapping")
    for key in value:
        if key not in keys:
            raise ConfigError(
                f"ROLLBACK_CONFIG: unknown key {where}.{key} (expected one of {', '.join(keys)})"
            )
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "must be a non-empty string")
    return value.strip()


def _config_path(value: Any, where: str) -> str:
    try:
        return normalize_path(_text(value, where).lstrip("/"))
    except ValueError as exc:
        raise _fail(where, f"is not a folder of the repository ({exc})") from None


def _string_list(value: Any, where: str, convert: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(where, "must be a list")
    return tuple(convert(item, f"{where}[{i}]") for i, item in enumerate(value))


def _service(name: str, spec: Any, namespace: str, branch: str) -> ServiceTarget:
    where = f"services.{name}"
    spec = _mapping({} if spec is None else spec, where, _SERVICE_KEYS)
    gitops = None
    if spec.get("gitops") is not None:
        gitops_spec = _mapping(spec["gitops"], f"{where}.gitops", _GITOPS_KEYS)
        if not gitops_spec.get("repo") or not gitops_spec.get("path"):
            raise _fail(f"{where}.gitops", "needs repo and path")
        gitops = GitOpsTarget(
            repo=_text(gitops_spec["repo"], f"{where}.gitops.repo"),
            path=_config_path(gitops_spec["path"], f"{where}.gitops.path"),
            branch=_text(gitops_spec.get("branch") or branch, f"{where}.gitops.branch"),
        )
    argocd_app = None
    if spec.get("argocd") is not None:
        argocd_spec = _mapping(spec["argocd"], f"{where}.argocd", _ARGOCD_KEYS)
        if not argocd_spec.get("app"):
            raise _fail(f"{where}.argocd", "needs app")
        argocd_app = _text(argocd_spec["app"], f"{where}.argocd.app")
    return ServiceTarget(
        service=name,
        namespace=_text(spec.get("namespace") or namespace, f"{where}.namespace"),
        gitops=gitops,
        argocd_app=argocd_app,
        allowed_paths=_string_list(
            spec.get("allowed_paths", []), f"{where}.allowed_paths", _config_path
        ),
        allowed_apps=_string_list(spec.get("allowed_apps", []), f"{where}.allowed_apps", _text),
    )


def _matcher(label: Any, value: Any, where: str) -> LabelMatcher:
    if not isinstance(label, str) or not _LABEL_NAME.fullmatch(label):
        raise _fail(where, f"has {label!r}, which is not a label name")
    if not isinstance(value, str):
        raise _fail(f"{where}.{label}", "must be a string (quote it in YAML)")
    if not value.startswith("~"):
        return LabelMatcher(label, value)
    try:
        return LabelMatcher(label, value, re.compile(value[1:]))
    except re.error as exc:
        raise _fail(f"{where}.{label}", f"is not a valid regex ({exc})") from None


def _trigger(index: int, spec: Any) -> TriggerRule:
    where = f"triggers[{index}]"
    spec = _mapping(spec, where, _TRIGGER_KEYS)
    match = spec.get("match")
    if not isinstance(match, dict) or not match:
        raise _fail(f"{where}.match", "must be a non-empty mapping of label: value")
    tier = spec.get("tier")
    if tier not in TIERS:
        raise _fail(f"{where}.tier", f"must be one of {', '.join(TIERS)}")
    service_label = spec.get("service_label", "service")
    if not isinstance(service_label, str) or not _LABEL_NAME.fullmatch(service_label):
        raise _fail(f"{where}.service_label", "must be a label name")
    matchers = tuple(_matcher(k, v, f"{where}.match") for k, v in match.items())
    return TriggerRule(match=matchers, tier=tier, service_label=service_label)


def parse_rollback_config(data: Any, namespace: str, branch: str) -> RollbackConfig:
    """Validate loaded ROLLBACK_CONFIG data; `namespace`/`branch` fill a service's omissions."""
    if data is None:
        data = {}
    data = _mapping(data, "(top level)", _TOP_KEYS) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not isinstance(data.get("services", {}), dict):
        raise ConfigError("ROLLBACK_CONFIG: expected a mapping with a 'services:' map")
    services = {
        str(name): _service(str(name), spec, namespace, branch)
        for name, spec in (data.get("services") or {}).items()
    }
    triggers = data.get("triggers") or []
    if not isinstance(triggers, list):
        raise _fail("triggers", "must be a list")
    return RollbackConfig(
        services=services, triggers=tuple(_trigger(i, t) for i, t in enumerate(triggers))
    )


def load_rollback_config(path: str, namespace: str, branch: str) -> RollbackConfig:
    """Read the ROLLBACK_CONFIG YAML file; every problem is one line naming its place."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"ROLLBACK_CONFIG: cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"ROLLBACK_CONFIG: {path} is not valid YAML ({exc.__class__.__name__})"
        ) from None
    return parse_rollback_config(data, namespace, branch)
