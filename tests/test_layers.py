"""The house in floors, read from the code: every import of every product module (imports
inside functions included, ``if TYPE_CHECKING:`` blocks excluded: they never run), checked for
circles and for arrows that run up.

Floors, bottom to top: ``core`` (the ground floor) <- ``data_prep`` and ``eval`` side by side
<- ``tools`` and ``benchmarks``. A module may import its own floor and the floors below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("core", "data_prep", "eval", "tools", "benchmarks")
# what each floor may import (its own package included)
ALLOWED = {
    "core": {"core"},
    "data_prep": {"core", "data_prep"},
    "eval": {"core", "eval"},
    "tools": {"core", "data_prep", "eval", "tools"},
    "benchmarks": {"core", "data_prep", "eval", "tools", "benchmarks"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports at run time (``from pkg import mod`` -> pkg.mod)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a.b.c (a name in a.b) -> a.b
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PACKAGES:
                found.add(target)
    found.discard(name)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for package in PACKAGES
             for p in sorted((root / package).rglob("*.py")) if "samples" not in p.parts}
    modules = set(files)
    return {name: imports_of(path, name, modules) for name, path in files.items()}


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps
                  if b.split(".")[0] not in ALLOWED[a.split(".")[0]])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(REPO)


def test_the_graph_sees_imports_inside_functions(graph: dict[str, set[str]]) -> None:
    # eval.infer imports the engine and the pipeline inside functions (they pull in vLLM)
    assert {"eval.engine", "eval.pipeline"} <= graph["eval.infer"]
    assert "core.io" in graph["core.records"]
    assert set(graph) >= {"core.io", "core.registry", "data_prep.crossner", "eval.config",
                          "tools.train", "benchmarks.bench_train_data"}


def test_no_import_runs_up_a_floor(graph: dict[str, set[str]]) -> None:
    assert upward_arrows(graph) == []


def test_no_module_imports_itself_back(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_the_checks_fail_on_a_planted_circle_and_arrow(tmp_path: Path) -> None:
    """The rules above can fail: a toy tree with a circle through a function-level import, an
    upward arrow, and a type-only import that must not count."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "core" / "a.py").write_text("from data_prep import conv\n")
    (tmp_path / "data_prep" / "conv.py").write_text("def f():\n    from core import a\n")
    (tmp_path / "eval" / "cfg.py").write_text("from eval import stage\n")
    (tmp_path / "eval" / "stage.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from eval.cfg import X\n")
    toy = import_graph(tmp_path)
    assert upward_arrows(toy) == ["core.a -> data_prep.conv"]
    assert cycles(toy) == [["core.a", "data_prep.conv"]]
    assert toy["eval.stage"] == set()
