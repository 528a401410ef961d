"""Settings: every contract variable read and documented, bad values named, secrets safe."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from receiver.config import Settings
from receiver.errors import ConfigError
from receiver.http.auth import token_actor
from receiver.secrets import SECRET_NAMES

ROOT = Path(__file__).resolve().parents[1]


def documented_variables() -> set[str]:
    """Variable names in the first column of the tables of docs/configuration.md."""
    names: set[str] = set()
    for row in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if row.startswith("| `"):
            first = row.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", first))
    return names


def test_every_documented_variable_is_read_by_the_code() -> None:
    names = documented_variables()
    assert len(names) > 50
    code = "\n".join(p.read_text() for p in (ROOT / "receiver").rglob("*.py"))
    unread = sorted(n for n in names if f'"{n}"' not in code)
    assert unread == []


def test_every_registered_secret_is_documented_with_its_file_variant() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    secrets_section = docs.split("### Secrets as files", 1)[1].split("\n## ", 1)[0]
    assert [n for n in SECRET_NAMES if f"`{n}`" not in secrets_section] == []
    assert "ADMIN_TOKENS_FILE" in secrets_section


def test_defaults_follow_the_contract() -> None:
    s = Settings.from_env({})
    assert (s.prometheus_url, s.service_name, s.namespace, s.slo_window, s.error_budget) == (
        "http://localhost:9090",
        "app",
        "production",
        "30d",
        0.001,
    )
    assert (s.gitops_branch, s.gitops_provider, s.gitops_mode, s.rollback_mode) == (
        "main",
        "auto",
        "push",
        "both",
    )
    assert (
        s.cooldown_minutes,
        s.max_rollbacks_per_hour,
        s.max_rollbacks_per_day,
        s.max_concurrent_rollbacks,
    ) == (60, 1, 3, 3)
    assert s.rollback_change_window_seconds == 86400
    assert [w.describe() for w in s.blackout_windows] == ["Sat,Sun 00:00-06:00 UTC"]
    assert (
        s.approval_timeout_minutes,
        s.emergency_veto_minutes,
        s.validation_timeout_seconds,
        s.lock_lease_seconds,
        s.port,
    ) == (30, None, 600, 120, 8080)
    assert (s.redis_url, s.redis_prefix, s.redis_sentinel_master) == (None, "rollback:", "mymaster")
    assert (s.argocd_username, s.pagerduty_url, s.log_level) == (
        "admin",
        "https://events.pagerduty.com/v2/enqueue",
        "INFO",
    )
    assert s.rollback_enabled and s.auto_rollback_critical and s.auto_rollback_emergency
    assert not (s.require_approval or s.dry_run or s.argocd_insecure or s.argocd_plaintext)
    assert s.embedded_store and not s.api_enabled


@pytest.mark.parametrize(
    "env, name",
    [
        ({"COOLDOWN_MINUTES": "soon"}, "COOLDOWN_MINUTES"),
        ({"MAX_ROLLBACKS_PER_HOUR": "0"}, "MAX_ROLLBACKS_PER_HOUR"),
        ({"DRY_RUN": "maybe"}, "DRY_RUN"),
        ({"ROLLBACK_MODE": "all"}, "ROLLBACK_MODE"),
        ({"ERROR_BUDGET": "2"}, "ERROR_BUDGET"),
        ({"SLO_WINDOW": "a month"}, "SLO_WINDOW"),
        ({"ROLLBACK_CHANGE_WINDOW": "24"}, "ROLLBACK_CHANGE_WINDOW"),
        ({"BLACKOUT_WINDOWS": "Sat 25:00-26:00"}, "BLACKOUT_WINDOWS"),
        ({"PROMETHEUS_URL": "localhost:9090"}, "PROMETHEUS_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"REDIS_SENTINELS": "a:1,b"}, "REDIS_SENTINELS"),
        ({"GITOPS_REPO": "not a repo"}, "GITOPS_REPO"),
        ({"GITOPS_PROVIDER": "gitlab"}, "GITOPS_PROVIDER"),
        ({"PORT": "70000"}, "PORT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"WEBHOOK_USERNAME": "am"}, "WEBHOOK_PASSWORD"),
        ({"ADMIN_TOKEN": "a", "ADMIN_TOKEN_FILE": "/etc/x"}, "ADMIN_TOKEN"),
        ({"ADMIN_TOKEN_FILE": "/nonexistent/token"}, "ADMIN_TOKEN_FILE"),
        ({"ROLLBACK_CONFIG": "/nonexistent.yml"}, "ROLLBACK_CONFIG"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_the_variable(
    env: dict[str, str], name: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    message = info.value.message
    assert message.startswith(name) and "\n" not in message


@pytest.mark.parametrize(
    "yaml_text, where",
    [
        ("services: [a, b]", "'services:' map"),
        (
            "services:\n  app:\n    gitops: {repo: acme/gitops}\n",
            "services.app.gitops needs repo and path",
        ),
        ("services:\n  app:\n    argocd: {}\n", "services.app.argocd needs app"),
        ("services: {app: [1", "not valid YAML"),
        (
            "services:\n  app:\n    gitops: {repo: r/g, path: k8s/app, brnach: dev}\n",
            "unknown key services.app.gitops.brnach",
        ),
        ("services:\n  app:\n    argocdd: {app: x}\n", "unknown key services.app.argocdd"),
        (
            "services:\n  app:\n    argocd: {app: x, name: y}\n",
            "unknown key services.app.argocd.name",
        ),
        ("servics: {}\n", "unknown key (top level).servics"),
        (
            "triggers:\n  - match: {a: b}\n    tier: critical\n    servce_label: x\n",
            "unknown key triggers[0].servce_label",
        ),
        (
            "services:\n  app:\n    gitops: {repo: r/g, path: k8s/../other}\n",
            "services.app.gitops.path is not a folder",
        ),
        (
            "services:\n  app:\n    gitops: {repo: r/g, path: k8s/app}\n    allowed_paths: [.]\n",
            "services.app.allowed_paths[0] is not a folder",
        ),
        (
            "services:\n  app:\n    allowed_apps: app-eu\n",
            "services.app.allowed_apps must be a list",
        ),
        (
            "triggers:\n  - match: {severity: '~(crit'}\n    tier: critical\n",
            "triggers[0].match.severity is not a valid regex",
        ),
        (
            "triggers:\n  - match: {severity: page}\n    tier: warning\n",
            "triggers[0].tier must be one of",
        ),
        ("triggers:\n  - match: {}\n    tier: critical\n", "triggers[0].match must be a non-empty"),
        (
            "triggers:\n  - match: {page: true}\n    tier: critical\n",
            "triggers[0].match.page must be a string",
        ),
        (
            "triggers:\n  - match: {a: b}\n    tier: critical\n    service_label: 'x-y'\n",
            "triggers[0].service_label must be a label name",
        ),
        ("triggers: {a: b}\n", "triggers must be a list"),
    ],
)
def test_a_bad_rollback_config_names_the_entry(tmp_path: Path, yaml_text: str, where: str) -> None:
    path = tmp_path / "services.yml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match="ROLLBACK_CONFIG") as info:
        Settings.from_env({"ROLLBACK_CONFIG": str(path)})
    assert where in info.value.message and "\n" not in info.value.message


def test_rollback_config_defines_many_services_and_the_single_service_falls_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "services.yml"
    path.write_text(
        "services:\n  web:\n    namespace: edge\n"
        "    gitops: {repo: acme/gitops, path: k8s/web/}\n    argocd: {app: web-prod}\n"
        "  jobs:\n    argocd: {app: jobs}\n"
    )
    s = Settings.from_env(
        {
            "ROLLBACK_CONFIG": str(path),
            "SERVICE_NAME": "api",
            "GITOPS_REPO": "acme/gitops",
            "GITOPS_PATH": "k8s/api",
            "GITOPS_BRANCH": "prod",
        }
    )
    web = s.target_for("web")
    assert web is not None and web.gitops is not None
    assert (web.namespace, web.gitops.path, web.gitops.branch, web.argocd_app) == (
        "edge",
        "k8s/web",
        "prod",
        "web-prod",
    )
    jobs = s.target_for("jobs")
    assert jobs is not None and jobs.gitops is None and jobs.argocd_app == "jobs"
    api = s.target_for("api")
    assert api is not None and api.gitops is not None and api.gitops.path == "k8s/api"
    assert s.target_for("unknown") is None


def test_secret_files_are_reread_after_rotation_and_never_shown(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first-token-value\n")
    s = Settings.from_env({"ADMIN_TOKEN_FILE": str(token)})
    assert token_actor("first-token-value", s) == "admin"
    token.write_text("second-token-value\n")
    os.utime(token, (time.time() + 5, time.time() + 5))
    assert token_actor("first-token-value", s) is None
    assert token_actor("second-token-value", s) == "admin"
    assert "second-token-value" not in repr(s)


def test_admin_tokens_file_names_the_actor(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# name token\nalice tok-alice-123\nbob tok-bob-456\n")
    s = Settings.from_env({"ADMIN_TOKENS_FILE": str(tokens)})
    assert s.api_enabled
    assert (token_actor("tok-bob-456", s), token_actor("tok-x", s)) == ("bob", None)
    tokens.write_text("alice\n")
    with pytest.raises(ConfigError, match="ADMIN_TOKENS_FILE: line 1"):
        Settings.from_env({"ADMIN_TOKENS_FILE": str(tokens)})


def test_blackout_none_or_empty_means_no_blackout() -> None:
    assert Settings.from_env({"BLACKOUT_WINDOWS": "none"}).blackout_windows == ()
    assert Settings.from_env({"BLACKOUT_WINDOWS": ""}).blackout_windows == ()


def test_blackout_windows_are_parsed_once_into_typed_windows() -> None:
    s = Settings.from_env({"BLACKOUT_WINDOWS": "Mon-Fri 22:00-02:00 Europe/Berlin"})
    (window,) = s.blackout_windows
    assert (window.weekdays, window.start_minute, window.zone) == (
        frozenset(range(5)),
        22 * 60,
        "Europe/Berlin",
    )


def test_the_shipped_kubernetes_environment_is_accepted() -> None:
    env = {}
    for line in (ROOT / "deploy" / "kubernetes" / "receiver.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            if not name.endswith("_FILE"):  # secret files exist only in the pod
                env[name] = value
    settings = Settings.from_env(env)
    assert settings.redis_url and settings.dry_run  # shipped safe: dry run, shared Redis


def test_service_names_and_match_labels_are_data_not_keys(tmp_path: Path) -> None:
    path = tmp_path / "services.yml"
    path.write_text(
        "services:\n  brnach:\n    argocd: {app: brnach-prod}\n"
        "    allowed_apps: [brnach-eu]\n"
        "triggers:\n  - match: {sloth_severity: page, tier: '~crit.*'}\n    tier: emergency\n"
        "    service_label: sloth_service\n"
    )
    s = Settings.from_env({"ROLLBACK_CONFIG": str(path)})
    target = s.target_for("brnach")
    assert target is not None and target.allowed_apps == ("brnach-eu",)
    (rule,) = s.triggers
    assert (rule.tier, rule.service_label) == ("emergency", "sloth_service")
    assert rule.matches({"sloth_severity": "page", "tier": "critical"})
    assert not rule.matches({"sloth_severity": "page", "tier": "warning"})


def test_redis_password_is_a_secret_and_conflicts_with_a_password_in_the_url(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret-redis\n")
    s = Settings.from_env({"REDIS_URL": "redis://r:6379/0", "REDIS_PASSWORD_FILE": str(secret)})
    assert s.redis_password.get() == "s3cret-redis"
    assert "s3cret-redis" in s.secret_values() and "s3cret-redis" not in repr(s)
    with pytest.raises(ConfigError, match=r"^REDIS_PASSWORD: REDIS_URL already holds"):
        Settings.from_env({"REDIS_URL": "redis://:pw@r:6379/0", "REDIS_PASSWORD": "other"})


def test_every_registered_secret_loads_from_its_file_and_is_offered_for_redaction(
    tmp_path: Path,
) -> None:
    env = {}
    for number, name in enumerate(SECRET_NAMES):
        path = tmp_path / name
        path.write_text(f"value-{number:02d}-of-secret\n")
        env[f"{name}_FILE"] = str(path)
    env["WEBHOOK_USERNAME"] = "am"
    s = Settings.from_env(env)
    expected = {f"value-{n:02d}-of-secret" for n in range(len(SECRET_NAMES))}
    assert set(s.secret_values()) == expected
    assert not any(value in repr(s) for value in expected)


def test_each_default_is_written_once_on_the_settings_field() -> None:
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    "env, name",
    [
        ({"PROMETHEUS_URL": "ftp://bot:hunter2-secret@prom"}, "PROMETHEUS_URL"),
        ({"ARGOCD_SERVER": "https://bot:hunter2-secret@argocd/x y"}, "ARGOCD_SERVER"),
        ({"GITOPS_REPO": "svn://bot:hunter2-secret@host/repo"}, "GITOPS_REPO"),
        ({"GITOPS_TOKEN": "hunter2-secret", "SERVICE_NAME": "x", "PORT": "hunter2-secret"}, "PORT"),
    ],
)
def test_a_start_up_error_never_echoes_a_secret(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert info.value.message.startswith(name) and "hunter2-secret" not in info.value.message


@pytest.mark.parametrize("seconds", ["1", "60", "89"])
def test_a_stabilisation_window_too_short_for_post_rollback_traffic_is_a_start_up_error(
    seconds: str,
) -> None:
    with pytest.raises(ConfigError, match=r"^STABILIZATION_SECONDS: .* at least 90$"):
        Settings.from_env({"STABILIZATION_SECONDS": seconds})


@pytest.mark.parametrize("seconds", ["0", "90", "300"])
def test_stabilisation_off_or_long_enough_is_accepted(seconds: str) -> None:
    assert Settings.from_env({"STABILIZATION_SECONDS": seconds}).stabilization_seconds == int(
        seconds
    )
