"""The house rules that keep the code easy to extend: imports go one way (no cycles, counting imports
inside function bodies), files and functions stay short, and every recipe key has its registered class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from compress_core import recipe, recover
from compress_core.prune import PRUNERS, criteria
from tests.conftest import ROOT

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(*packages: str) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``name`` imports anywhere in its file (function bodies included)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            prefix = base[: len(base) - node.level + 1] if node.level else []
            mod = ".".join([*prefix, *(node.module.split(".") if node.module else [])])
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package itself
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


@pytest.mark.parametrize("packages", [("compress_core",), ("pages", "app")])
def test_no_import_cycle_counting_imports_inside_functions(packages):
    mods = _modules(*packages[:1]) if packages[0] == "compress_core" else {**_modules("pages"), "app": ROOT / "app.py"}
    known = set(mods)
    graph = {n: _imports(n, p, known) for n, p in mods.items()}
    # a package imports its own submodules to re-export them; that edge is not a dependency cycle
    graph = {
        n: {m for m in deps if not (m.startswith(n + ".") and mods[n].name == "__init__.py")}
        for n, deps in graph.items()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_core_never_imports_the_dashboard():
    for name, path in _modules("compress_core").items():
        text = path.read_text()
        assert "import streamlit" not in text and "from pages" not in text, name


def test_core_files_and_functions_stay_short():
    long_files, long_functions = [], []
    for name, path in _modules("compress_core").items():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_FILE_LINES:
            long_files.append(f"{name}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name}: {n} lines")
    assert not long_files, long_files
    assert not long_functions, long_functions


def test_every_recipe_criterion_and_prune_kind_has_its_registered_class():
    assert set(recipe.CRITERIA) == set(criteria.CRITERIA)
    assert set(recipe.PRUNE_KINDS) - {"none"} == set(PRUNERS)
    assert recipe.RECOVERY_LEVELS == recover.LEVELS
    for key, obj in criteria.CRITERIA.items():
        assert obj.key == key and obj.needs in (None, "images", "labels")
