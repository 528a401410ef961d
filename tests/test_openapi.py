"""OpenAPI 3.1: the served document is valid, and the live app keeps to it under schemathesis."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from receiver.app import build_engine, create_app
from receiver.config import Settings
from tests.serving import Served
from tests.support import Collector

ADMIN_TOKEN = "openapi-admin-token"


def app_client(**env: str) -> FlaskClient:
    settings = Settings.from_env({"BLACKOUT_WINDOWS": "none", **env})
    engine = build_engine(settings, tell=Collector())
    return create_app(settings, engine=engine, start_sweeper=False).test_client()


def test_the_document_is_served_without_auth_and_passes_openapi_spec_validator() -> None:
    """GET /api/v1/openapi.json answers 200 even with the admin API disabled, and validates."""
    response = app_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_the_validator_rejects_a_broken_document() -> None:
    """The validation is not vacuous: a path without responses is an error."""
    document = app_client().get("/api/v1/openapi.json").get_json()
    document["paths"]["/webhook"]["post"]["responses"] = "none"
    with pytest.raises(OpenAPIValidationError):
        validate(document)


def test_it_describes_the_webhook_and_every_api_v1_route() -> None:
    """Every /webhook and /api/v1 rule of the Flask app has its path and method in the document."""
    client = app_client(ADMIN_TOKEN=ADMIN_TOKEN)
    document = client.get("/api/v1/openapi.json").get_json()
    app = client.application
    for rule in app.url_map.iter_rules():
        if not (rule.rule == "/webhook" or rule.rule.startswith("/api/v1/")):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in document["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], (method, path)
    listing = document["paths"]["/api/v1/rollbacks"]["get"]
    assert {"limit", "cursor"} <= {p["name"] for p in listing["parameters"]}
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert "next_cursor" in page["properties"]
    assert "Record" in document["components"]["schemas"]
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A live receiver in dry run (embedded store): manual rollbacks change nothing."""
    env = {
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SERVICE_NAME": "app",
        "GITOPS_REPO": f"file://{tmp_path}/no-such-repo.git",
        "GITOPS_PROVIDER": "git",
        "GITOPS_PATH": "k8s/app",
        "ROLLBACK_MODE": "gitops",
        "DRY_RUN": "true",
        "BLACKOUT_WINDOWS": "none",
        "ROLLBACK_CHANGE_WINDOW": "0",
        "STABILIZATION_SECONDS": "0",
        "PROMETHEUS_URL": "http://127.0.0.1:9",
        "GITOPS_CACHE_DIR": str(tmp_path / "cache"),
        "REDIS_URL": "",
        "WEBHOOK_TOKEN": "",
    }
    server = Served(env, workers=1, tmp=tmp_path)
    yield server
    server.stop()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(
    served: Served, tmp_path: Path
) -> None:
    """Bounded generated requests (valid and invalid) to every operation: no 5xx, schema kept."""
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is not installed: pip install -e '.[test]'"
    result = subprocess.run(
        [
            binary,
            "run",
            served.url + "/api/v1/openapi.json",
            "--url",
            served.url,
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--seed",
            "1",
            "--generation-deterministic",
            "--request-timeout",
            "10",
            "--max-time",
            "30",
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "Test cases:" in result.stdout and " passed" in result.stdout
    assert "unhandled error" not in served.logs()
