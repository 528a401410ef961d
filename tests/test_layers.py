"""Arrows point one way: receiver/ has no import cycle and no module imports from a layer above."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "receiver"

# Layers, bottom first. A module may import from its own layer or a lower one; a module not
# listed belongs to the foundation (it must then not import from act, the pipeline or above).
FOUNDATION = 0
LAYERS: dict[str, int] = {
    "receiver.intake": FOUNDATION,
    "receiver.clients": FOUNDATION,
    "receiver.state": FOUNDATION,
    "receiver.decide": FOUNDATION,
    "receiver.tell": FOUNDATION,
    "receiver.config": FOUNDATION,
    "receiver.errors": FOUNDATION,
    "receiver.logs": FOUNDATION,
    "receiver.metrics": FOUNDATION,
    "receiver.exposition": FOUNDATION,
    "receiver.memory": FOUNDATION,
    "receiver.periodic": FOUNDATION,
    "receiver.secrets": FOUNDATION,
    "receiver.env": FOUNDATION,
    "receiver.redaction": FOUNDATION,
    "receiver.blackouts": FOUNDATION,
    "receiver.startup": FOUNDATION,
    "receiver.act": 1,
    "receiver.pipeline": 2,
    "receiver.approvals": 2,
    "receiver.gathering": 2,
    "receiver.records": 2,
    "receiver.reserving": 2,
    "receiver.runner": 2,
    "receiver.status": 2,
    "receiver.sweeper": 2,
    "receiver.monitor": 2,
    "receiver.check": 2,
    "receiver.isolation": 2,
    "receiver.http": 3,
    "receiver.cli": 3,
    "receiver.console": 3,
    "receiver.app": 3,
    "receiver.wsgi": 3,
    "receiver.gunicorn_conf": 3,
    "receiver": 3,  # the package itself: create_app
}
NAMES = {0: "foundation", 1: "act", 2: "pipeline", 3: "http/cli/app"}

# Known cycles in code this branch does not own, each with who removes it.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """Every receiver module `name` imports, at any depth of the file (function bodies too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m in modules and m != name}


def layer_of(name: str) -> int:
    best = ""
    for prefix in LAYERS:
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return LAYERS[best] if best else FOUNDATION


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = [
        f"{name} ({NAMES[layer_of(name)]}) imports {dep} ({NAMES[layer_of(dep)]})"
        for name, deps in graph().items()
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(name)
    ]
    assert upward == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    done: set[str] = set()
    for start in sorted(edges):
        if start in done:
            continue
        path: list[str] = []
        stack = [(start, iter(sorted(edges[start])))]
        on_path = {start}
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.discard(node)
                path.pop()
                done.add(node)
            elif child in on_path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                stack.append((child, iter(sorted(edges.get(child, ())))))
                on_path.add(child)
                path.append(child)
    return None


def test_there_is_no_import_cycle_in_receiver() -> None:
    edges = {
        name: {dep for dep in deps if (name, dep) not in KNOWN_CYCLE_EDGES}
        for name, deps in graph().items()
    }
    assert find_cycle(edges) is None


def test_the_cycle_finder_finds_a_cycle_and_an_upward_import_is_named() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("receiver.act.argocd") > layer_of("receiver.state.store")
    assert layer_of("receiver.http.api") > layer_of("receiver.pipeline")


# Long modules this branch does not own, each with who splits it.
KNOWN_LONG = {}


def test_no_module_in_receiver_is_longer_than_400_lines() -> None:
    long = [
        f"{name}: {lines} lines"
        for name, path in all_modules().items()
        if (lines := len(path.read_text().splitlines())) > 400 and name not in KNOWN_LONG
    ]
    assert long == []


def test_the_pipeline_reads_in_under_200_lines() -> None:
    assert len((ROOT / "pipeline.py").read_text().splitlines()) <= 200


def test_the_http_layer_calls_the_engine_and_never_reaches_into_its_store() -> None:
    reaching = [
        f"{path.name}:{node.lineno}"
        for path in sorted((ROOT / "http").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "store"
    ]
    assert reaching == []
