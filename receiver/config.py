"""Typed settings, read once from the environment and validated at start.

Every variable of the contract's configuration table is one line of
`Settings.from_env`; its default is written once, on the `Settings` field. A bad value
raises `ConfigError` whose message names the variable, and the CLI prints that one line
and exits. Secrets come from `receiver.secrets`, per-service targets and trigger rules from
`receiver.decide.targets`, blackout windows from `receiver.decide.blackout`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from receiver.decide.blackout import BlackoutWindow, parse_windows
from receiver.decide.targets import GitOpsTarget as GitOpsTarget
from receiver.decide.targets import ServiceTarget as ServiceTarget
from receiver.decide.targets import (
    TriggerRule,
    load_rollback_config,
    normalize_path,
)
from receiver.env import EnvReader
from receiver.env import parse_duration as parse_duration
from receiver.errors import ConfigError
from receiver.redaction import Redactor, redact, redact_userinfo
from receiver.secrets import SECRET_NAMES, load_admin_tokens, load_secrets
from receiver.secrets import Secret as Secret

# GitOpsTarget, ServiceTarget and Secret are re-exported (`as` imports) so code written
# against their old home here keeps importing; new code imports them from their modules.

DEFAULT_BLACKOUT_WINDOWS = "Sat,Sun 00:00-06:00 UTC"


def is_github_slug(repo: str) -> bool:
    """True for `owner/name` (the GitHub API provider), false for a git URL or path."""
    return re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo) is not None


@dataclass(frozen=True)
class Settings:
    """Every setting of the receiver, from the environment; see docs/configuration.md."""

    prometheus_url: str = "http://localhost:9090"
    service_name: str = "app"
    namespace: str = "production"
    slo_window: str = "30d"
    error_budget: float = 0.001
    gitops_repo: str | None = None
    gitops_branch: str = "main"
    gitops_path: str | None = None
    gitops_provider: str = "auto"
    github_api_url: str = "https://api.github.com"
    gitops_mode: str = "push"
    argocd_server: str | None = None
    argocd_app_name: str | None = None
    argocd_username: str = "admin"
    argocd_insecure: bool = False
    argocd_plaintext: bool = False
    argocd_disable_autosync: bool = False
    rollback_enabled: bool = True
    auto_rollback_critical: bool = True
    auto_rollback_emergency: bool = True
    require_approval: bool = False
    dry_run: bool = False
    rollback_mode: str = "both"
    cooldown_minutes: int = 60
    max_rollbacks_per_hour: int = 1
    max_rollbacks_per_day: int = 3
    max_concurrent_rollbacks: int = 3
    global_limit_window_seconds: float = 600.0
    rollback_change_window_seconds: float = 86400.0
    blackout_windows: tuple[BlackoutWindow, ...] = parse_windows(DEFAULT_BLACKOUT_WINDOWS)
    alertmanager_url: str | None = None
    approval_timeout_minutes: int = 30
    emergency_veto_minutes: int | None = None
    validation_timeout_seconds: int = 600
    redis_url: str | None = None
    redis_prefix: str = "rollback:"
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "mymaster"
    webhook_username: str | None = None
    admin_tokens: tuple[tuple[str, str], ...] = ()
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    log_file: str | None = None
    log_level: str = "INFO"
    rollback_config: str | None = None
    lock_lease_seconds: int = 120
    port: int = 8080
    # Secrets: one field per name of receiver.secrets.SECRET_NAMES (field = name.lower()).
    gitops_token: Secret = field(default_factory=lambda: Secret("GITOPS_TOKEN"))
    argocd_password: Secret = field(default_factory=lambda: Secret("ARGOCD_PASSWORD"))
    argocd_token: Secret = field(default_factory=lambda: Secret("ARGOCD_TOKEN"))
    webhook_token: Secret = field(default_factory=lambda: Secret("WEBHOOK_TOKEN"))
    webhook_password: Secret = field(default_factory=lambda: Secret("WEBHOOK_PASSWORD"))
    admin_token: Secret = field(default_factory=lambda: Secret("ADMIN_TOKEN"))
    slack_webhook: Secret = field(default_factory=lambda: Secret("SLACK_WEBHOOK"))
    pagerduty_key: Secret = field(default_factory=lambda: Secret("PAGERDUTY_KEY"))
    redis_password: Secret = field(default_factory=lambda: Secret("REDIS_PASSWORD"))
    session_secret: Secret = field(default_factory=lambda: Secret("SESSION_SECRET"))
    incident_token: Secret = field(default_factory=lambda: Secret("INCIDENT_TOKEN"))
    incident_webhook: Secret = field(default_factory=lambda: Secret("INCIDENT_WEBHOOK"))
    incident_webhook_token: Secret = field(default_factory=lambda: Secret("INCIDENT_WEBHOOK_TOKEN"))
    # Added by features (docs/configuration.md, "More variables").
    stabilization_seconds: int = 300
    stabilization_threshold: float = 0.01
    monitor_interval_seconds: int = 60
    reaper_interval_seconds: int = 15
    history_retention_days: int = 30
    history_max_records: int = 1000
    receiver_url: str = "http://127.0.0.1:8080"
    public_url: str | None = None
    incident_repo: str | None = None
    gitops_cache_dir: str | None = None
    receiver_malloc_trim: bool = True  # malloc_trim once a second (receiver.memory)
    # From ROLLBACK_CONFIG (plus the single-service target of SERVICE_NAME).
    services: Mapping[str, ServiceTarget] = field(default_factory=dict)
    triggers: tuple[TriggerRule, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError naming the first bad one."""
        environ = os.environ if environ is None else environ
        try:
            return cls._read(EnvReader(environ, cls))
        except ConfigError as exc:  # the one line is printed: it must not echo a secret
            given = [environ.get(name, "").strip() for name in SECRET_NAMES]
            raise ConfigError(redact(exc.message, [v for v in given if v])) from None

    @classmethod
    def _read(cls, env: EnvReader) -> Settings:
        secrets: dict[str, Any] = {
            name.lower(): secret for name, secret in load_secrets(env.environ).items()
        }
        settings = cls(
            prometheus_url=env.url("PROMETHEUS_URL"),
            service_name=env.text("SERVICE_NAME"),
            namespace=env.text("NAMESPACE"),
            slo_window=env.checked("SLO_WINDOW", _slo_window),
            error_budget=env.number("ERROR_BUDGET", float, low=0.0, high=1.0),
            gitops_repo=env.checked("GITOPS_REPO", _gitops_repo),
            gitops_branch=env.text("GITOPS_BRANCH"),
            gitops_path=env.checked("GITOPS_PATH", _gitops_path),
            gitops_provider=env.choice("GITOPS_PROVIDER", ("auto", "github", "git")),
            github_api_url=env.url("GITHUB_API_URL"),
            gitops_mode=env.choice("GITOPS_MODE", ("push", "pull-request")),
            argocd_server=env.checked("ARGOCD_SERVER", _argocd_server),
            argocd_app_name=env.text("ARGOCD_APP_NAME"),
            argocd_username=env.text("ARGOCD_USERNAME"),
            argocd_insecure=env.boolean("ARGOCD_INSECURE"),
            argocd_plaintext=env.boolean("ARGOCD_PLAINTEXT"),
            argocd_disable_autosync=env.boolean("ARGOCD_DISABLE_AUTOSYNC"),
            rollback_enabled=env.boolean("ROLLBACK_ENABLED"),
            auto_rollback_critical=env.boolean("AUTO_ROLLBACK_CRITICAL"),
            auto_rollback_emergency=env.boolean("AUTO_ROLLBACK_EMERGENCY"),
            require_approval=env.boolean("REQUIRE_APPROVAL"),
            dry_run=env.boolean("DRY_RUN"),
            rollback_mode=env.choice("ROLLBACK_MODE", ("gitops", "argocd", "both")),
            cooldown_minutes=env.number("COOLDOWN_MINUTES", int, low=0),
            max_rollbacks_per_hour=env.number("MAX_ROLLBACKS_PER_HOUR", int, low=1),
            max_rollbacks_per_day=env.number("MAX_ROLLBACKS_PER_DAY", int, low=1),
            max_concurrent_rollbacks=env.number("MAX_CONCURRENT_ROLLBACKS", int, low=1),
            global_limit_window_seconds=env.checked(
                "GLOBAL_LIMIT_WINDOW", parse_duration, "global_limit_window_seconds"
            ),
            rollback_change_window_seconds=env.checked(
                "ROLLBACK_CHANGE_WINDOW", parse_duration, "rollback_change_window_seconds"
            ),
            blackout_windows=env.checked("BLACKOUT_WINDOWS", _blackout, keep_empty=True),
            alertmanager_url=env.url("ALERTMANAGER_URL"),
            approval_timeout_minutes=env.number("APPROVAL_TIMEOUT_MINUTES", int, low=1),
            emergency_veto_minutes=env.number("EMERGENCY_VETO_MINUTES", int, low=1),
            validation_timeout_seconds=env.number("VALIDATION_TIMEOUT_SECONDS", int, low=1),
            redis_url=env.checked("REDIS_URL", _redis_url),
            redis_prefix=env.text("REDIS_PREFIX"),
            redis_sentinels=env.checked("REDIS_SENTINELS", _sentinels),
            redis_sentinel_master=env.text("REDIS_SENTINEL_MASTER"),
            webhook_username=env.text("WEBHOOK_USERNAME"),
            admin_tokens=load_admin_tokens(env.environ),
            pagerduty_url=env.url("PAGERDUTY_URL"),
            log_file=env.text("LOG_FILE"),
            log_level=env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
            rollback_config=env.text("ROLLBACK_CONFIG"),
            lock_lease_seconds=env.number("LOCK_LEASE_SECONDS", int, low=2),
            port=env.number("PORT", int, low=1, high=65535),
            stabilization_seconds=env.number("STABILIZATION_SECONDS", int, low=0),
            stabilization_threshold=env.number("STABILIZATION_THRESHOLD", float, low=0.0, high=1.0),
            monitor_interval_seconds=env.number("MONITOR_INTERVAL_SECONDS", int, low=1),
            reaper_interval_seconds=env.number("REAPER_INTERVAL_SECONDS", int, low=1),
            history_retention_days=env.number("HISTORY_RETENTION_DAYS", int, low=1),
            history_max_records=env.number("HISTORY_MAX_RECORDS", int, low=10),
            receiver_url=env.url("RECEIVER_URL"),
            public_url=env.url("PUBLIC_URL"),
            incident_repo=env.checked("INCIDENT_REPO", _incident_repo),
            gitops_cache_dir=env.text("GITOPS_CACHE_DIR"),
            receiver_malloc_trim=env.boolean("RECEIVER_MALLOC_TRIM"),
            **secrets,
        )
        _check_pairs(settings)
        services: dict[str, ServiceTarget] = {}
        triggers: tuple[TriggerRule, ...] = ()
        if settings.rollback_config:
            loaded = load_rollback_config(
                settings.rollback_config, settings.namespace, settings.gitops_branch
            )
            services, triggers = dict(loaded.services), loaded.triggers
        default = settings.default_target()
        if settings.service_name not in services and (default.gitops or default.argocd_app):
            services[settings.service_name] = default
        return dataclasses.replace(settings, services=services, triggers=triggers)

    def default_target(self) -> ServiceTarget:
        """The single-service target from GITOPS_* / ARGOCD_APP_NAME for SERVICE_NAME."""
        gitops = None
        if self.gitops_repo and self.gitops_path:
            gitops = GitOpsTarget(self.gitops_repo, self.gitops_path, self.gitops_branch)
        return ServiceTarget(self.service_name, self.namespace, gitops, self.argocd_app_name)

    def target_for(self, service: str) -> ServiceTarget | None:
        """The configured target of a service, or None when nothing says where it lives."""
        return self.services.get(service)

    @property
    def slo_window_seconds(self) -> float:
        return parse_duration("SLO_WINDOW", self.slo_window)

    @property
    def embedded_store(self) -> bool:
        return self.redis_url is None and not self.redis_sentinels

    @property
    def api_enabled(self) -> bool:
        return bool(self.admin_token.get()) or bool(self.admin_tokens)

    def secret_values(self) -> list[str]:
        """Every configured secret value (the registry's and ADMIN_TOKENS_FILE's), for redaction."""
        secrets, fixed = self._secret_sources
        return [value for value in (secret.get() for secret in secrets) if value] + fixed

    @functools.cached_property
    def _secret_sources(self) -> tuple[tuple[Secret, ...], list[str]]:
        """The secrets, re-read at each use (a NAME_FILE may rotate), and the fixed values."""
        fixed = [token for _, token in self.admin_tokens]
        fixed += [p for url in (self.redis_url, self.gitops_repo) for p in _url_passwords(url)]
        return tuple(getattr(self, name.lower()) for name in SECRET_NAMES), [v for v in fixed if v]

    def redactor(self) -> Redactor:
        """The one redaction step, fed by this configuration's secrets (re-read per use)."""
        return Redactor(self.secret_values)


_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@]*?:(?P<password>[^/@]+)@", re.I)


@functools.lru_cache(maxsize=16)  # asked for every text redacted: every answer and log line
def _url_passwords(url: str | None) -> tuple[str, ...]:
    """The password in a URL's userinfo (`scheme://user:password@host`), as written and decoded."""
    match = _URL_PASSWORD.match(url or "")
    if match is None:
        return ()
    return (match.group("password"), unquote(match.group("password")))


# Errors are judged on a 1m window that starts after validation (act/validate.py): a shorter
# stabilisation window could never see one.
MIN_STABILIZATION_SECONDS = 90


def _check_pairs(settings: Settings) -> None:
    """Settings that are only valid together."""
    if 0 < settings.stabilization_seconds < MIN_STABILIZATION_SECONDS:
        raise ConfigError(
            f"STABILIZATION_SECONDS: {settings.stabilization_seconds} is too short to judge "
            f"traffic after the rollback; use 0 (off) or at least {MIN_STABILIZATION_SECONDS}"
        )
    if settings.webhook_username and not settings.webhook_password:
        raise ConfigError("WEBHOOK_PASSWORD: required when WEBHOOK_USERNAME is set")
    if settings.webhook_password and not settings.webhook_username:
        raise ConfigError("WEBHOOK_USERNAME: required when WEBHOOK_PASSWORD is set")
    if (
        settings.redis_password
        and settings.redis_url
        and re.match(r"^[a-z]+://[^/@]*:[^/@]*@", settings.redis_url)
    ):
        raise ConfigError("REDIS_PASSWORD: REDIS_URL already holds a password; set only one")


def _slo_window(name: str, value: str) -> str:
    if parse_duration(name, value) <= 0:
        raise ConfigError(f"{name}: must be longer than 0")
    return value


def _blackout(name: str, value: str) -> tuple[BlackoutWindow, ...]:
    text = "" if value.lower() == "none" else value
    try:
        return parse_windows(text)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _gitops_path(name: str, value: str) -> str | None:
    if value.strip("/") == "":
        return None
    try:
        return normalize_path(value.lstrip("/"))
    except ValueError as exc:
        raise ConfigError(f"{name}: {value!r} is not a folder of the repository ({exc})") from None


def _sentinels(name: str, value: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in value.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{name}: {item.strip()!r} is not host:port")
        out.append((host, int(port)))
    return tuple(out)


def _redis_url(name: str, value: str) -> str:
    if not re.match(r"^(redis|rediss|unix)://", value):
        raise ConfigError(f"{name}: must start with redis://, rediss:// or unix://")
    return value


def _gitops_repo(name: str, value: str) -> str:
    if not (
        is_github_slug(value)
        or re.match(r"^(https?|ssh|file|git)://", value)
        or re.match(r"^[\w.-]+@[\w.-]+:", value)
        or value.startswith("/")
    ):
        shown = redact_userinfo(value)
        raise ConfigError(f"{name}: {shown!r} is neither owner/name nor a git URL")
    return value


def _argocd_server(name: str, value: str) -> str:
    server = re.sub(r"^https?://", "", value).rstrip("/")
    if not re.fullmatch(r"[\w.\-\[\]:]+", server):
        raise ConfigError(f"{name}: {redact_userinfo(value)!r} is not host:port")
    return server


def _incident_repo(name: str, value: str) -> str:
    """INCIDENT_REPO: a GitHub `owner/name` where incident issues are opened."""
    if not is_github_slug(value.strip()):
        raise ConfigError(f"{name}: must be a GitHub owner/name, got {value.strip()[:80]!r}")
    return value.strip()
