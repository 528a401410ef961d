"""Start-up summary: one line per service, a warning for every setup that never rolls back."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import redis

from receiver.app import build_engine, create_app
from receiver.config import Settings
from receiver.startup import log_startup, redis_address, startup_summary
from receiver.state.store import Store, client_options
from tests.support import Collector


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def warnings(s: Settings, development: bool = False) -> list[str]:
    return [n.message for n in startup_summary(s, development) if n.level == "warning"]


def infos(s: Settings) -> list[str]:
    return [n.message for n in startup_summary(s) if n.level == "info"]


def test_a_complete_single_service_setup_gives_one_line_and_no_warning() -> None:
    """The line names the repo/path, the app, the mode, dry run, approval and blackouts."""
    s = settings(
        SERVICE_NAME="api",
        GITOPS_REPO="acme/gitops",
        GITOPS_PATH="k8s/api",
        ARGOCD_SERVER="argocd:443",
        ARGOCD_APP_NAME="api-prod",
    )
    assert warnings(s) == []
    (line,) = [m for m in infos(s) if m.startswith("service ")]
    for part in (
        "service api",
        "acme/gitops path k8s/api branch main",
        "argocd app api-prod",
        "mode both",
        "dry run false",
        "approval not required",
        "blackout windows Sat,Sun 00:00-06:00 UTC",
    ):
        assert part in line


def test_every_service_of_rollback_config_gets_its_own_line(tmp_path: Path) -> None:
    config = tmp_path / "services.yaml"
    config.write_text(
        "services:\n"
        "  api: {gitops: {repo: acme/gitops, path: k8s/api}}\n"
        "  web: {gitops: {repo: acme/gitops, path: k8s/web}}\n"
    )
    s = settings(
        ROLLBACK_CONFIG=str(config),
        SERVICE_NAME="unused-default",
        ROLLBACK_MODE="gitops",
        REQUIRE_APPROVAL="true",
        BLACKOUT_WINDOWS="none",
    )
    lines = [m for m in infos(s) if m.startswith("service ")]
    assert [line.split()[1] for line in lines] == ["api", "web"]
    assert all("approval required" in line and "blackout windows none" in line for line in lines)
    assert warnings(s) == []


def test_gitops_repo_unset_warns_that_the_service_never_rolls_back() -> None:
    (warning,) = warnings(settings(ROLLBACK_MODE="gitops"))
    assert "can never roll back" in warning and "GITOPS_REPO is unset" in warning


def test_gitops_repo_without_gitops_path_warns() -> None:
    (warning,) = warnings(settings(ROLLBACK_MODE="gitops", GITOPS_REPO="acme/gitops"))
    assert "GITOPS_REPO is set without GITOPS_PATH" in warning


def test_mode_both_without_argocd_server_warns() -> None:
    (warning,) = warnings(settings(GITOPS_REPO="acme/gitops", GITOPS_PATH="k8s/app"))
    assert "ARGOCD_SERVER is unset: ROLLBACK_MODE=both" in warning


def test_mode_argocd_without_argocd_server_warns_and_needs_no_gitops_repo() -> None:
    (warning,) = warnings(settings(ROLLBACK_MODE="argocd", ARGOCD_APP_NAME="app-prod"))
    assert "ARGOCD_SERVER is unset: ROLLBACK_MODE=argocd" in warning


def test_mode_argocd_with_a_server_but_no_app_warns() -> None:
    (warning,) = warnings(settings(ROLLBACK_MODE="argocd", ARGOCD_SERVER="argocd:443"))
    assert "no Argo CD app configured" in warning


def test_dry_run_warns_outside_a_development_run_only() -> None:
    s = settings(ROLLBACK_MODE="gitops", GITOPS_REPO="a/b", GITOPS_PATH="k8s", DRY_RUN="true")
    assert any("DRY_RUN=true" in w for w in warnings(s))
    assert warnings(s, development=True) == []
    assert "dry run true" in infos(s)[0]


def test_redis_address_names_host_and_port_but_never_credentials() -> None:
    s = settings(REDIS_URL="redis://user:hunter2-secret@redis.example:6380/2")
    assert redis_address(s) == "redis.example:6380"
    assert redis_address(settings(REDIS_URL="rediss://:pw@10.0.0.5/0")) == "10.0.0.5:6379"
    assert redis_address(settings()) == "embedded store"
    assert all("hunter2" not in n.message for n in startup_summary(s))


class Records(logging.Handler):
    """Keeps the records of one logger, whatever setup_logging did to propagation."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def logged(s: Settings, environ: dict[str, str]) -> list[logging.LogRecord]:
    logger = logging.getLogger("receiver.startup")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log_startup(s, environ=environ)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.records


def test_log_startup_logs_each_line_at_its_level() -> None:
    """Info lines at INFO, never-rolls-back warnings at WARNING; RECEIVER_DEV quiets dry run."""
    s = settings(ROLLBACK_MODE="gitops", DRY_RUN="true")
    records = logged(s, {})
    levels = {(r.levelname, r.getMessage().split(":")[0]) for r in records}
    assert ("INFO", "service app (namespace production)") in levels
    assert ("WARNING", "service app can never roll back") in levels
    assert any(r.levelname == "WARNING" and "DRY_RUN" in r.getMessage() for r in records)
    assert not any("DRY_RUN" in r.getMessage() for r in logged(s, {"RECEIVER_DEV": "true"}))


def test_create_app_logs_the_summary_once(capfd: pytest.CaptureFixture[str]) -> None:
    """create_app writes the service line once, as a JSON log line of receiver.startup."""
    s = settings(GITOPS_REPO="acme/gitops", GITOPS_PATH="k8s/app", ROLLBACK_MODE="gitops")
    create_app(s, engine=build_engine(s, tell=Collector()), start_sweeper=False)
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    ours = [e["msg"] for e in lines if e["logger"] == "receiver.startup"]
    service_lines = [msg for msg in ours if msg.startswith("service app ")]
    assert len(service_lines) == 1


def test_readyz_names_the_unreachable_redis_without_credentials(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A 503 whose JSON and log line say which host:port did not answer; the password stays out."""
    s = settings(
        REDIS_URL="redis://:s3cr3t-redis-pass@127.0.0.1:1/0",
        GITOPS_REPO="acme/gitops",
        GITOPS_PATH="k8s/app",
    )
    dead = Store(redis.Redis(host="127.0.0.1", port=1, **client_options()))
    engine = build_engine(s, store=dead, tell=Collector())
    client = create_app(s, engine=engine, start_sweeper=False).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["redis"] == "127.0.0.1:1"
    assert "127.0.0.1:1" in body["error"]
    assert "s3cr3t" not in response.get_data(as_text=True)
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    (line,) = [e for e in logged if e["msg"] == "readyz: state store unreachable"]
    assert line["redis"] == "127.0.0.1:1"
    assert not any("s3cr3t" in json.dumps(e) for e in logged)
