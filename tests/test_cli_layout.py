"""The CLI package: one module per command group, one shared module, no sibling imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[1] / "receiver" / "cli"
COMMAND_MODULES = {"serve", "evaluate", "operations", "blackout"}
# What each module may import from receiver.cli (the package's __init__ registers the commands).
ALLOWED = {
    "shared": set(),
    "rendering": set(),
    "serve": {"shared"},
    "evaluate": {"shared"},
    "operations": {"shared", "rendering"},
    "blackout": {"shared"},
    "__main__": {"__init__"},
    "__init__": COMMAND_MODULES,
}


def cli_imports(path: Path) -> set[str]:
    """The receiver.cli modules a file imports ("__init__" for the package itself)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "receiver.cli":
                found |= {alias.name for alias in node.names if alias.name in ALLOWED} or {
                    "__init__"
                }
            elif node.module.startswith("receiver.cli."):
                found.add(node.module.removeprefix("receiver.cli."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("receiver.cli."):
                    found.add(alias.name.removeprefix("receiver.cli."))
    return found


def test_every_module_of_the_package_is_known() -> None:
    assert {p.stem for p in CLI.glob("*.py")} == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_no_module_imports_a_sibling_command_module(module: str) -> None:
    imported = cli_imports(CLI / f"{module}.py")
    assert imported <= ALLOWED[module], f"{module} imports {imported - ALLOWED[module]}"


def test_the_old_flat_cli_modules_are_gone() -> None:
    parent = CLI.parent
    assert not [p.name for p in parent.glob("cli*.py")]


def test_the_console_script_is_the_packages_main() -> None:
    import tomllib

    from receiver.cli import main

    pyproject = tomllib.loads((CLI.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["rollback-receiver"] == "receiver.cli:main"
    assert set(main.commands) == {
        "serve",
        "check",
        "monitor",
        "history",
        "approve",
        "reject",
        "rollback",
        "status",
        "replay",
        "blackout",
    }
