"""The house rules of the code base, checked: data flows one way (no import cycle, lazy and
TYPE_CHECKING imports included), modules stay small, every subpackage says what it owns, and
tests use only public names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cnnbench"
TESTS = Path(__file__).resolve().parent
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module → the cnnbench modules it imports anywhere in its text."""
    modules = _modules()

    def owner(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("cnnbench")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnnbench"):
                targets = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            graph[name] |= {owner(t) for t in targets} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_layers_point_one_way():
    graph = import_graph()
    lower = {"cnnbench.suite", "cnnbench.train", "cnnbench.results"}
    for name, imports in graph.items():
        if any(name == p or name.startswith(p + ".") for p in lower):
            assert not {i for i in imports if i.startswith(("cnnbench.cli", "cnnbench.api",
                                                            "cnnbench.render"))}, name


def test_modules_stay_small():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_every_subpackage_says_what_it_owns(package):
    doc = importlib.import_module(f"cnnbench.{package}").__doc__
    assert doc and len(doc.split()) >= 8


def test_tests_use_public_names_only():
    private = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnnbench"):
                private += [f"{path.name}: {a.name}" for a in node.names
                            if a.name.startswith("_")]
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.test_"):
                private.append(f"{path.name}: from {node.module} (use tests.helpers)")
    assert not private
