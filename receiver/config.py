"""Typed settings, read once from the environment and validated at start.

Every variable of the contract's configuration table is one line of
`Settings.from_env`; a bad value raises `ConfigError` whose message names the
variable, and the CLI prints that one line and exits.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from receiver.errors import ConfigError

SECRET_NAMES = (
    "GITOPS_TOKEN",
    "ARGOCD_PASSWORD",
    "ARGOCD_TOKEN",
    "WEBHOOK_TOKEN",
    "WEBHOOK_PASSWORD",
    "ADMIN_TOKEN",
    "SLACK_WEBHOOK",
    "PAGERDUTY_KEY",
)

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Secret:
    """A secret given as NAME or NAME_FILE; a file is re-read when it changes (rotation).

    Its repr never shows the value, so a Settings object can be logged safely.
    """

    def __init__(self, name: str, value: str | None = None, path: str | None = None) -> None:
        self.name = name
        self._value = value
        self._path = path
        self._mtime: float | None = None
        self._lock = threading.Lock()
        if path is not None:
            self._load()

    def _load(self) -> None:
        assert self._path is not None
        try:
            stat = os.stat(self._path)
            text = Path(self._path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{self.name}_FILE: cannot read {self._path}: {exc.strerror}"
            ) from None
        self._value = text.strip() or None
        self._mtime = stat.st_mtime

    def get(self) -> str | None:
        """The current value; a NAME_FILE secret is re-read when its mtime changed."""
        if self._path is not None:
            with self._lock:
                try:
                    mtime = os.stat(self._path).st_mtime
                except OSError:
                    return self._value  # keep the last good value while a file is swapped
                if mtime != self._mtime:
                    self._load()
        return self._value

    def __bool__(self) -> bool:
        return bool(self.get())

    def __repr__(self) -> str:
        return f"Secret({self.name}, {'set' if self.get() else 'unset'})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.name, self.get()) == (other.name, other.get())

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass(frozen=True)
class GitOpsTarget:
    repo: str
    path: str
    branch: str = "main"


@dataclass(frozen=True)
class ServiceTarget:
    """Where one service's manifests and Argo CD application live."""

    service: str
    namespace: str
    gitops: GitOpsTarget | None
    argocd_app: str | None

    def with_overrides(self, argocd_app: str | None, gitops_path: str | None) -> ServiceTarget:
        """Apply the alert labels `argocd_app` / `gitops_path` on top of the configured target."""
        gitops = self.gitops
        if gitops_path and gitops is not None:
            gitops = GitOpsTarget(repo=gitops.repo, path=gitops_path, branch=gitops.branch)
        return ServiceTarget(
            service=self.service,
            namespace=self.namespace,
            gitops=gitops,
            argocd_app=argocd_app or self.argocd_app,
        )


def parse_duration(name: str, text: str) -> float:
    """Seconds in a Prometheus-style duration ("30d", "24h", "90s", "0")."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigError(f"{name}: {text!r} is not a duration like 30s, 5m, 24h or 30d")
    number, unit = match.groups()
    if unit is None and number != "0":
        raise ConfigError(f"{name}: {text!r} needs a unit (s, m, h, d, w)")
    return int(number) * _UNIT_SECONDS[unit or "s"]


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: {raw!r} is not a boolean (true or false)")


def _int(env: Mapping[str, str], name: str, default: int | None, minimum: int = 0) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}: {value} is below the minimum {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    if not low < value < high:
        raise ConfigError(f"{name}: {value} must be between {low} and {high}")
    return value


def _str(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip()


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _str(env, name, default) or default
    if value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def _url(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = _str(env, name, default)
    if value is not None and not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{name}: {value!r} is not an http(s) URL")
    return value.rstrip("/") if value else value


def _secret(env: Mapping[str, str], name: str) -> Secret:
    path = _str(env, f"{name}_FILE")
    if path is not None:
        if _str(env, name) is not None:
            raise ConfigError(f"{name}: set either {name} or {name}_FILE, not both")
        return Secret(name, path=path)
    return Secret(name, value=_str(env, name))


def _admin_tokens(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`ADMIN_TOKENS_FILE`: one `name token` pair a line; blank lines and # comments skipped."""
    path = _str(env, "ADMIN_TOKENS_FILE")
    if path is None:
        return ()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"ADMIN_TOKENS_FILE: cannot read {path}: {exc.strerror}") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"ADMIN_TOKENS_FILE: line {number} is not 'name token'")
        pairs.append((parts[0], parts[1]))
    return tuple(pairs)


def _sentinels(env: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    raw = _str(env, "REDIS_SENTINELS")
    if raw is None:
        return ()
    out = []
    for item in raw.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"REDIS_SENTINELS: {item.strip()!r} is not host:port")
        out.append((host, int(port)))
    return tuple(out)


def _redis_url(env: Mapping[str, str]) -> str | None:
    value = _str(env, "REDIS_URL")
    if value is not None and not re.match(r"^(redis|rediss|unix)://", value):
        raise ConfigError("REDIS_URL: must start with redis://, rediss:// or unix://")
    return value


def _gitops_repo(env: Mapping[str, str]) -> str | None:
    value = _str(env, "GITOPS_REPO")
    if value is None:
        return None
    if not (
        is_github_slug(value)
        or re.match(r"^(https?|ssh|file|git)://", value)
        or re.match(r"^[\w.-]+@[\w.-]+:", value)
        or value.startswith("/")
    ):
        raise ConfigError(f"GITOPS_REPO: {value!r} is neither owner/name nor a git URL")
    return value


def is_github_slug(repo: str) -> bool:
    """True for `owner/name` (the GitHub API provider), false for a git URL or path."""
    return re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo) is not None


def load_services(path: str, defaults: Settings) -> dict[str, ServiceTarget]:
    """Read ROLLBACK_CONFIG (YAML `services:` map) into targets, naming the bad entry."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"ROLLBACK_CONFIG: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"ROLLBACK_CONFIG: {path} is not valid YAML ({exc.__class__.__name__})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ConfigError("ROLLBACK_CONFIG: expected a mapping with a 'services:' map")
    services: dict[str, ServiceTarget] = {}
    for name, spec in data["services"].items():
        where = f"ROLLBACK_CONFIG: services.{name}"
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be a mapping")
        gitops_spec: Any = spec.get("gitops")
        gitops = None
        if gitops_spec is not None:
            if (
                not isinstance(gitops_spec, dict)
                or not gitops_spec.get("repo")
                or not gitops_spec.get("path")
            ):
                raise ConfigError(f"{where}.gitops needs repo and path")
            gitops = GitOpsTarget(
                repo=str(gitops_spec["repo"]),
                path=str(gitops_spec["path"]).strip("/"),
                branch=str(gitops_spec.get("branch") or defaults.gitops_branch),
            )
        argocd_spec: Any = spec.get("argocd")
        argocd_app = None
        if argocd_spec is not None:
            if not isinstance(argocd_spec, dict) or not argocd_spec.get("app"):
                raise ConfigError(f"{where}.argocd needs app")
            argocd_app = str(argocd_spec["app"])
        services[str(name)] = ServiceTarget(
            service=str(name),
            namespace=str(spec.get("namespace") or defaults.namespace),
            gitops=gitops,
            argocd_app=argocd_app,
        )
    return services


@dataclass(frozen=True)
class Settings:
    """Every setting of the receiver, from the environment; see docs/configuration.md."""

    prometheus_url: str = "http://localhost:9090"
    service_name: str = "app"
    namespace: str = "production"
    slo_window: str = "30d"
    error_budget: float = 0.001
    gitops_repo: str | None = None
    gitops_token: Secret = field(default_factory=lambda: Secret("GITOPS_TOKEN"))
    gitops_branch: str = "main"
    gitops_path: str | None = None
    gitops_provider: str = "auto"
    github_api_url: str = "https://api.github.com"
    gitops_mode: str = "push"
    argocd_server: str | None = None
    argocd_app_name: str | None = None
    argocd_username: str = "admin"
    argocd_password: Secret = field(default_factory=lambda: Secret("ARGOCD_PASSWORD"))
    argocd_token: Secret = field(default_factory=lambda: Secret("ARGOCD_TOKEN"))
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
    rollback_change_window_seconds: float = 86400.0
    blackout_windows: str = "Sat,Sun 00:00-06:00 UTC"
    alertmanager_url: str | None = None
    approval_timeout_minutes: int = 30
    emergency_veto_minutes: int | None = None
    validation_timeout_seconds: int = 600
    redis_url: str | None = None
    redis_prefix: str = "rollback:"
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "mymaster"
    webhook_token: Secret = field(default_factory=lambda: Secret("WEBHOOK_TOKEN"))
    webhook_username: str | None = None
    webhook_password: Secret = field(default_factory=lambda: Secret("WEBHOOK_PASSWORD"))
    admin_token: Secret = field(default_factory=lambda: Secret("ADMIN_TOKEN"))
    admin_tokens: tuple[tuple[str, str], ...] = ()
    session_secret: Secret = field(default_factory=lambda: Secret("SESSION_SECRET"))
    slack_webhook: Secret = field(default_factory=lambda: Secret("SLACK_WEBHOOK"))
    pagerduty_key: Secret = field(default_factory=lambda: Secret("PAGERDUTY_KEY"))
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    log_file: str | None = None
    log_level: str = "INFO"
    rollback_config: str | None = None
    lock_lease_seconds: int = 120
    port: int = 8080
    # Added by features (docs/configuration.md, "More variables").
    stabilization_seconds: int = 300
    stabilization_threshold: float = 0.01
    monitor_interval_seconds: int = 60
    reaper_interval_seconds: int = 15
    history_retention_days: int = 30
    history_max_records: int = 1000
    receiver_url: str = "http://127.0.0.1:8080"
    public_url: str | None = None
    gitops_cache_dir: str | None = None
    services: Mapping[str, ServiceTarget] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError naming the first bad one."""
        env = os.environ if environ is None else environ
        mode = _choice(env, "ROLLBACK_MODE", "both", ("gitops", "argocd", "both"))
        settings = cls(
            prometheus_url=_url(env, "PROMETHEUS_URL", "http://localhost:9090") or "",
            service_name=_str(env, "SERVICE_NAME", "app") or "app",
            namespace=_str(env, "NAMESPACE", "production") or "production",
            slo_window=_slo_window(env),
            error_budget=_float(env, "ERROR_BUDGET", 0.001, 0.0, 1.0),
            gitops_repo=_gitops_repo(env),
            gitops_token=_secret(env, "GITOPS_TOKEN"),
            gitops_branch=_str(env, "GITOPS_BRANCH", "main") or "main",
            gitops_path=(_str(env, "GITOPS_PATH") or "").strip("/") or None,
            gitops_provider=_choice(env, "GITOPS_PROVIDER", "auto", ("auto", "github", "git")),
            github_api_url=_url(env, "GITHUB_API_URL", "https://api.github.com") or "",
            gitops_mode=_choice(env, "GITOPS_MODE", "push", ("push", "pull-request")),
            argocd_server=_argocd_server(env),
            argocd_app_name=_str(env, "ARGOCD_APP_NAME"),
            argocd_username=_str(env, "ARGOCD_USERNAME", "admin") or "admin",
            argocd_password=_secret(env, "ARGOCD_PASSWORD"),
            argocd_token=_secret(env, "ARGOCD_TOKEN"),
            argocd_insecure=_bool(env, "ARGOCD_INSECURE", False),
            argocd_plaintext=_bool(env, "ARGOCD_PLAINTEXT", False),
            argocd_disable_autosync=_bool(env, "ARGOCD_DISABLE_AUTOSYNC", False),
            rollback_enabled=_bool(env, "ROLLBACK_ENABLED", True),
            auto_rollback_critical=_bool(env, "AUTO_ROLLBACK_CRITICAL", True),
            auto_rollback_emergency=_bool(env, "AUTO_ROLLBACK_EMERGENCY", True),
            require_approval=_bool(env, "REQUIRE_APPROVAL", False),
            dry_run=_bool(env, "DRY_RUN", False),
            rollback_mode=mode,
            cooldown_minutes=_int(env, "COOLDOWN_MINUTES", 60) or 0,
            max_rollbacks_per_hour=_int(env, "MAX_ROLLBACKS_PER_HOUR", 1, 1) or 1,
            max_rollbacks_per_day=_int(env, "MAX_ROLLBACKS_PER_DAY", 3, 1) or 3,
            max_concurrent_rollbacks=_int(env, "MAX_CONCURRENT_ROLLBACKS", 3, 1) or 3,
            rollback_change_window_seconds=parse_duration(
                "ROLLBACK_CHANGE_WINDOW", _str(env, "ROLLBACK_CHANGE_WINDOW", "24h") or "24h"
            ),
            blackout_windows=_blackout(env),
            alertmanager_url=_url(env, "ALERTMANAGER_URL"),
            approval_timeout_minutes=_int(env, "APPROVAL_TIMEOUT_MINUTES", 30, 1) or 30,
            emergency_veto_minutes=_int(env, "EMERGENCY_VETO_MINUTES", None, 1),
            validation_timeout_seconds=_int(env, "VALIDATION_TIMEOUT_SECONDS", 600, 1) or 600,
            redis_url=_redis_url(env),
            redis_prefix=_str(env, "REDIS_PREFIX", "rollback:") or "rollback:",
            redis_sentinels=_sentinels(env),
            redis_sentinel_master=_str(env, "REDIS_SENTINEL_MASTER", "mymaster") or "mymaster",
            webhook_token=_secret(env, "WEBHOOK_TOKEN"),
            webhook_username=_str(env, "WEBHOOK_USERNAME"),
            webhook_password=_secret(env, "WEBHOOK_PASSWORD"),
            admin_token=_secret(env, "ADMIN_TOKEN"),
            admin_tokens=_admin_tokens(env),
            session_secret=_secret(env, "SESSION_SECRET"),
            slack_webhook=_secret(env, "SLACK_WEBHOOK"),
            pagerduty_key=_secret(env, "PAGERDUTY_KEY"),
            pagerduty_url=_url(env, "PAGERDUTY_URL", "https://events.pagerduty.com/v2/enqueue")
            or "",
            log_file=_str(env, "LOG_FILE"),
            log_level=_choice(
                env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
            ),
            rollback_config=_str(env, "ROLLBACK_CONFIG"),
            lock_lease_seconds=_int(env, "LOCK_LEASE_SECONDS", 120, 2) or 120,
            port=_port(env),
            stabilization_seconds=_int(env, "STABILIZATION_SECONDS", 300) or 0,
            stabilization_threshold=_float(env, "STABILIZATION_THRESHOLD", 0.01, 0.0, 1.0),
            monitor_interval_seconds=_int(env, "MONITOR_INTERVAL_SECONDS", 60, 1) or 60,
            reaper_interval_seconds=_int(env, "REAPER_INTERVAL_SECONDS", 15, 1) or 15,
            history_retention_days=_int(env, "HISTORY_RETENTION_DAYS", 30, 1) or 30,
            history_max_records=_int(env, "HISTORY_MAX_RECORDS", 1000, 10) or 1000,
            receiver_url=_url(env, "RECEIVER_URL", "http://127.0.0.1:8080") or "",
            public_url=_url(env, "PUBLIC_URL"),
            gitops_cache_dir=_str(env, "GITOPS_CACHE_DIR"),
        )
        if settings.webhook_username and not settings.webhook_password:
            raise ConfigError("WEBHOOK_PASSWORD: required when WEBHOOK_USERNAME is set")
        if settings.webhook_password and not settings.webhook_username:
            raise ConfigError("WEBHOOK_USERNAME: required when WEBHOOK_PASSWORD is set")
        # Validate the blackout windows at start, not at the first alert.
        from receiver.decide.blackout import parse_windows

        try:
            parse_windows(settings.blackout_windows)
        except ValueError as exc:
            raise ConfigError(f"BLACKOUT_WINDOWS: {exc}") from None
        services: dict[str, ServiceTarget] = {}
        if settings.rollback_config:
            services = load_services(settings.rollback_config, settings)
        default = settings.default_target()
        if settings.service_name not in services and (default.gitops or default.argocd_app):
            services[settings.service_name] = default
        return _replace(settings, services=services)

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

    def admin_actor(self, token: str) -> str | None:
        """The actor name of a valid admin token, or None (constant-time comparisons)."""
        import hmac

        found = None
        for name, candidate in self.admin_tokens:
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = name
        admin = self.admin_token.get()
        if admin and hmac.compare_digest(admin.encode(), token.encode()):
            found = found or "admin"
        return found

    @property
    def api_enabled(self) -> bool:
        return bool(self.admin_token.get()) or bool(self.admin_tokens)

    def secret_values(self) -> list[str]:
        """Every configured secret value, for log redaction."""
        values = [
            s.get()
            for s in (
                self.gitops_token,
                self.argocd_password,
                self.argocd_token,
                self.webhook_token,
                self.webhook_password,
                self.admin_token,
                self.session_secret,
                self.slack_webhook,
                self.pagerduty_key,
            )
        ]
        values += [token for _, token in self.admin_tokens]
        return [v for v in values if v]


def _replace(settings: Settings, **changes: Any) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, **changes)


def _slo_window(env: Mapping[str, str]) -> str:
    value = _str(env, "SLO_WINDOW", "30d") or "30d"
    if parse_duration("SLO_WINDOW", value) <= 0:
        raise ConfigError("SLO_WINDOW: must be longer than 0")
    return value


def _blackout(env: Mapping[str, str]) -> str:
    raw = env.get("BLACKOUT_WINDOWS")
    if raw is None:
        return "Sat,Sun 00:00-06:00 UTC"
    value = raw.strip()
    return "" if value.lower() == "none" else value


def _argocd_server(env: Mapping[str, str]) -> str | None:
    value = _str(env, "ARGOCD_SERVER")
    if value is None:
        return None
    value = re.sub(r"^https?://", "", value).rstrip("/")
    if not re.fullmatch(r"[\w.\-\[\]:]+", value):
        raise ConfigError(f"ARGOCD_SERVER: {value!r} is not host:port")
    return value


def _port(env: Mapping[str, str]) -> int:
    value = _int(env, "PORT", 8080, 1) or 8080
    if value > 65535:
        raise ConfigError(f"PORT: {value} is not a TCP port")
    return value
