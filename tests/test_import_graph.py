"""The import graph points one way: infrastructure (lizzy/) knows no app, one door per store, no circles.

Every .py file is parsed (ast, not imported) and every import counts, at module level and inside
functions alike: an import moved into a function to dodge a circle is still a circle. Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".venv", "venv", ".git", "node_modules", "var", "__pycache__", ".hypothesis", ".ruff_cache"}
TOOLING_DIRS = ("bench", "tests")  # may use boto3 and redis directly (raw-client baselines, fixtures)
APP_PACKAGES = ("sessions_app", "migration_app")

# Packages whose modules must import one another without a circle (sessions_app since issue 13's
# restructuring: the session stores in sessions_app.services.store, one module per mode).
CYCLE_FREE_PACKAGES = ("lizzy", "migration_app", "sessions_app", "sessions_app.services.store")
# Packages where no import may sit inside a function: there it only hides an edge (a dodged circle, or
# a late import paid on a request) that belongs at the top of the module.
TOP_LEVEL_IMPORTS_ONLY = ("sessions_app",)


def python_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        if not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts):
            yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth (functions, methods, try blocks)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def function_level_imports(path: Path) -> list[str]:
    """``path:line`` of every import inside a function or method (``if TYPE_CHECKING:`` left out)."""
    found: list[str] = []
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    for function in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(function, functions):
            for node in _import_nodes(function):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return sorted(set(found))


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Dotted names this file imports. ``from package import name`` names ``package.name`` when that is
    one of ``known`` modules (a submodule), else ``package`` (a name defined in the package)."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        if node.level:
            base_parts = package.split(".") if package else []
            base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            names.add(candidate if candidate in known else base)
    return names


def import_graph() -> dict[str, set[str]]:
    paths = list(python_files())
    known = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, known) for path in paths}


def _top(name: str) -> str:
    return name.split(".")[0]


def importers_of(graph: Mapping[str, set[str]], top_level: Iterable[str]) -> dict[str, list[str]]:
    wanted = set(top_level)
    return {
        module: sorted(name for name in names if _top(name) in wanted)
        for module, names in sorted(graph.items())
        if any(_top(name) in wanted for name in names)
    }


def _in_packages(name: str, packages: Iterable[str]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or one that imports itself
    (Tarjan's algorithm, iterative); each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    cycles.append(sorted(component))
    return sorted(cycles)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def _product(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    return {module: names for module, names in graph.items() if _top(module) not in TOOLING_DIRS}


def test_the_graph_sees_module_and_function_level_imports(graph):
    # given what lizzy/apps.py imports inside ready() and lizzy/cost.py at module level
    assert "lizzy.admin_panels" in graph["lizzy.apps"]
    assert "lizzy.dynamodb" in graph["lizzy.cost"]
    # and a submodule imported by name from its package is an edge to the submodule
    assert "lizzy.dynamodb.client" in graph["lizzy.dynamodb.items"]


def test_only_the_dynamodb_package_imports_boto3_or_botocore(graph):
    importers = importers_of(_product(graph), ("boto3", "botocore"))
    assert importers, "the door itself imports boto3: the scan found nothing, so it tested nothing"
    outside = {module: names for module, names in importers.items() if not module.startswith("lizzy.dynamodb")}
    assert outside == {}


def test_only_the_redis_door_imports_redis(graph):
    importers = importers_of(_product(graph), ("redis",))
    assert importers, "lizzy.redis imports redis: the scan found nothing, so it tested nothing"
    outside = {module: names for module, names in importers.items() if not module.startswith("lizzy.redis")}
    assert outside == {}


def test_infrastructure_imports_no_app(graph):
    upward = {
        module: names for module, names in importers_of(graph, APP_PACKAGES).items() if _in_packages(module, ("lizzy",))
    }
    assert upward == {}


def test_no_import_cycles_in_the_cycle_free_packages(graph):
    inside = {
        module: {name for name in names if _in_packages(name, CYCLE_FREE_PACKAGES)}
        for module, names in graph.items()
        if _in_packages(module, CYCLE_FREE_PACKAGES)
    }
    assert find_cycles(inside) == []


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    acyclic = {"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a", "outside"}}
    assert find_cycles(acyclic) == []
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"g"}, "g": {"f"}}
    assert find_cycles(cyclic) == [["a", "b", "c"], ["e"], ["f", "g"]]


def test_a_function_level_import_that_closes_a_circle_is_found(tmp_path, monkeypatch):
    # given two modules: one imports the other at module level, the other imports back inside a function
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text("from pkg import second\n")
    (package / "second.py").write_text("def later():\n    from pkg.first import thing\n    return thing\n")
    (package / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import first\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)

    # when the graph is built
    graph = import_graph()

    # then the circle is found, and the TYPE_CHECKING import is not an edge
    assert graph["pkg.first"] == {"pkg.second"}
    assert graph["pkg.second"] == {"pkg.first"}
    assert graph["pkg.typed"] == {"typing"}
    assert find_cycles(graph) == [["pkg.first", "pkg.second"]]


def test_no_function_level_imports_in_sessions_app():
    paths = sorted(path for package in TOP_LEVEL_IMPORTS_ONLY for path in (ROOT / package).rglob("*.py"))
    assert any(module_name(path).startswith("sessions_app.services.store.") for path in paths), "found no store"
    assert [line for path in paths for line in function_level_imports(path)] == []


def test_a_function_level_import_is_found(tmp_path, monkeypatch):
    # given a module that imports at module level, inside a function, a method and a nested function
    (tmp_path / "late.py").write_text(
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "def f():\n    from os import path\n    return path\n"
        "class C:\n    def m(self):\n        def inner():\n            import json\n        return inner\n"
        "def typed():\n    if TYPE_CHECKING:\n        import typing\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)

    # then the function-level ones are found, once each, and the module-level and TYPE_CHECKING ones are not
    assert function_level_imports(tmp_path / "late.py") == ["late.py:4", "late.py:9"]
