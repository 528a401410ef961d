"""Packaging: the licence, runtime-only `make run`, and pins shared by CI and the image."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dry_make(target: str, tmp_path: Path) -> str:
    """The commands `make TARGET` would run on a fresh clone (no venv yet), without running them."""
    result = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def pip_installs(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if "pip install" in line and "-e" in line]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[normalise(name)] = version
    return out


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalise(re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]) for req in requirements}


def test_the_license_file_is_the_apache_2_0_text_the_pyproject_names() -> None:
    """LICENSE holds the full Apache-2.0 text and the package metadata points at it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "LICENSE").read_text()
    assert project["license"] == "Apache-2.0"
    assert "LICENSE" in project["license-files"]
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "9. Accepting Warranty" in text


def test_make_run_installs_only_the_runtime_dependencies(tmp_path: Path) -> None:
    """`make run` on a fresh clone installs the package without the test extra."""
    installs = pip_installs(dry_make("run", tmp_path))
    assert installs, "make run installs nothing"
    assert all("[test]" not in line for line in installs), installs
    assert all("-c constraints.txt" in line for line in installs), installs


def test_make_test_adds_the_test_extra_through_the_same_pins(tmp_path: Path) -> None:
    """`make test` installs the runtime and then the test extra, both with constraints.txt."""
    installs = pip_installs(dry_make("test", tmp_path))
    assert any("[test]" in line for line in installs), installs
    assert all("-c constraints.txt" in line for line in installs), installs


def test_constraints_pin_every_runtime_and_test_dependency() -> None:
    """constraints.txt pins each dependency the pyproject names, with an exact version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    wanted = requirement_names(project["dependencies"] + project["optional-dependencies"]["test"])
    assert wanted - set(pinned) == set()
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version) for version in pinned.values())
    assert "rollback-receiver" not in pinned


def test_the_dockerfile_installs_through_the_constraints() -> None:
    """The image's pip install uses constraints.txt, which the build context lets through."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"COPY [^\n]*constraints\.txt", dockerfile)
    assert re.search(r"pip install [^\n]*-c constraints\.txt", dockerfile)
    assert "!constraints.txt" in (ROOT / ".dockerignore").read_text().splitlines()


def test_make_constraints_refreshes_the_pins() -> None:
    """A `make constraints` target exists and runs the refresh script."""
    result = subprocess.run(
        ["make", "-n", "constraints"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "scripts/refresh-constraints.sh" in result.stdout
