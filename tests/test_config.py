"""Settings: every contract variable read and documented, bad values named, secrets safe."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from receiver.config import Settings
from receiver.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def documented_variables() -> set[str]:
    """Variable names from the tables of docs/configuration.md (the project's copy of the contract).

    The contract's configuration table is mirrored there: a variable the contract adds is added
    to the docs, and this test then insists the code reads it.
    """
    text = (ROOT / "docs" / "configuration.md").read_text()
    names: set[str] = set()
    for row in text.splitlines():
        if row.startswith("| `"):
            first = row.split("|")[1]
            names |= {n for n in re.findall(r"[A-Z][A-Z0-9_]{2,}", first) if n != "FILE"}
    return names


def test_every_documented_variable_is_read_by_the_code() -> None:
    names = documented_variables()
    assert {"GITOPS_REPO", "MAX_CONCURRENT_ROLLBACKS", "ARGOCD_TOKEN", "PUBLIC_URL"} <= names
    assert len(names) > 40
    code = "\n".join(p.read_text() for p in (ROOT / "receiver").rglob("*.py"))
    unread = sorted(n for n in names if f'"{n}"' not in code)
    assert unread == []


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
    assert s.blackout_windows == "Sat,Sun 00:00-06:00 UTC"
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
        ("services:\n  app:\n    argocd: {name: x}\n", "services.app.argocd needs app"),
        ("services: {app: [1", "not valid YAML"),
    ],
)
def test_a_bad_rollback_config_names_the_entry(tmp_path: Path, yaml_text: str, where: str) -> None:
    path = tmp_path / "services.yml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match="ROLLBACK_CONFIG") as info:
        Settings.from_env({"ROLLBACK_CONFIG": str(path)})
    assert where in info.value.message


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
    assert s.admin_actor("first-token-value") == "admin"
    token.write_text("second-token-value\n")
    os.utime(token, (time.time() + 5, time.time() + 5))
    assert s.admin_actor("first-token-value") is None
    assert s.admin_actor("second-token-value") == "admin"
    assert "second-token-value" not in repr(s)


def test_admin_tokens_file_names_the_actor(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# name token\nalice tok-alice-123\nbob tok-bob-456\n")
    s = Settings.from_env({"ADMIN_TOKENS_FILE": str(tokens)})
    assert s.api_enabled
    assert (s.admin_actor("tok-bob-456"), s.admin_actor("tok-x")) == ("bob", None)
    tokens.write_text("alice\n")
    with pytest.raises(ConfigError, match="ADMIN_TOKENS_FILE: line 1"):
        Settings.from_env({"ADMIN_TOKENS_FILE": str(tokens)})


def test_blackout_none_or_empty_means_no_blackout() -> None:
    assert Settings.from_env({"BLACKOUT_WINDOWS": "none"}).blackout_windows == ""
    assert Settings.from_env({"BLACKOUT_WINDOWS": ""}).blackout_windows == ""


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
