"""Dockerfile: hadolint clean and consistent with the package and the Kubernetes manifests."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def tool(name: str) -> str:
    """Path of a test tool on PATH or in the venv; fails the test when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"{name} not found: run `make tools`")
    return found


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_dockerfile_is_hadolint_clean() -> None:
    """hadolint finds nothing (DL3008, unpinned apt packages, is ignored with a reason)."""
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is not vacuous: a :latest base and a root user are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install flask\n")
    assert hadolint(bad).returncode != 0


def test_image_is_multi_stage_on_slim_python_3_11() -> None:
    """A build stage and a runtime stage, both python:3.11-slim."""
    bases = [args.split()[0] for keyword, args in instructions() if keyword == "FROM"]
    assert len(bases) >= 2
    assert all(base.startswith("python:3.11-slim") for base in bases)


def test_image_runs_the_console_script_as_a_non_root_user() -> None:
    """USER is a non-root uid that matches the manifests; the entry is `rollback-receiver serve`."""
    stage = dict(final_stage())
    uid = stage["USER"].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(stage["ENTRYPOINT"]) == ["rollback-receiver"]
    assert "rollback-receiver" in scripts
    assert json.loads(stage["CMD"]) == ["serve"]


def test_image_sets_the_multiprocess_dir_and_checks_healthz() -> None:
    """PROMETHEUS_MULTIPROC_DIR matches the Deployment's emptyDir; HEALTHCHECK asks /healthz."""
    stage = final_stage()
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    mount = {e["name"]: e.get("value") for e in container["env"]}["PROMETHEUS_MULTIPROC_DIR"]
    assert f"PROMETHEUS_MULTIPROC_DIR={mount}" in env
    assert "PORT=8080" in env
    healthcheck = dict(stage)["HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert dict(stage)["EXPOSE"] == "8080"


def test_everything_copied_exists_and_passes_dockerignore() -> None:
    """Each COPY source from the build context exists and .dockerignore lets it through."""
    patterns = [
        p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negate
        return keep

    sources = []
    for keyword, args in instructions():
        if keyword == "COPY" and "--from" not in args:
            sources += args.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{source} missing from the build context"
        assert included(source), f"{source} excluded by .dockerignore"
    assert not included(".venv") and not included(".git")
