"""The house rules that keep the code easy to extend: imports go one way (no cycles, counting imports
inside function bodies, and no core module imports a later layer), files and functions stay short in the
core, the pages and the benchmarks, the README's map lists every core module, and every recipe key has its
registered class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from compress_core.base import recipe
from compress_core.deploy.runtimes import RUNTIMES
from compress_core.engine import recover
from compress_core.engine.prune import PRUNERS, criteria
from compress_core.study.executors import EXECUTORS
from tests.conftest import ROOT

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
# The core's layers, in import order: a module may import its own layer and the ones before it, never a later one.
LAYERS = ("base", "models", "data", "engine", "files", "bench", "deploy", "study", "present", "cli")


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


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return "cli"  # python -m compress_core: the command line
    return parts[1] if len(parts) > 1 else ""


def test_every_core_module_lives_in_a_layer():
    loose = [n for n in _modules("compress_core") if n != "compress_core" and _layer(n) not in LAYERS]
    assert not loose, f"modules outside the layers {LAYERS}: {loose}"


def test_no_core_module_imports_a_later_layer():
    mods = _modules("compress_core")
    known = set(mods)
    upward = []
    for name, path in mods.items():
        if name == "compress_core":
            continue
        mine = LAYERS.index(_layer(name))
        for dep in sorted(_imports(name, path, known)):
            if dep != "compress_core" and LAYERS.index(_layer(dep)) > mine:
                upward.append(f"{name} ({_layer(name)}) imports {dep} ({_layer(dep)})")
    assert not upward, upward


def _long_parts(paths: list[Path]) -> tuple[list[str], list[str]]:
    long_files, long_functions = [], []
    for path in paths:
        lines = path.read_text().splitlines()
        name = str(path.relative_to(ROOT))
        if len(lines) > MAX_FILE_LINES:
            long_files.append(f"{name}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {n} lines")
    return long_files, long_functions


@pytest.mark.parametrize("where", ["compress_core", "pages", "benchmarks"])
def test_files_and_functions_stay_short(where):
    paths = sorted((ROOT / where).rglob("*.py"))
    if where == "pages":
        paths.append(ROOT / "app.py")
    long_files, long_functions = _long_parts(paths)
    assert not long_files + long_functions, long_files + long_functions  # one message: neither hides the other


def _readme_map() -> set[str]:
    """The module paths the README's Layout map names: an indented tree of ``dir/`` and ``file.py`` entries."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    stack: list[tuple[int, str]] = []
    found = set()
    for line in block.splitlines():
        entry = line.split()[0] if line.strip() else ""
        if not entry.endswith(("/", ".py")):
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(p for _, p in stack) + entry
        if entry.endswith("/"):
            stack.append((indent, entry))
        found.add(path)
    return found


def test_the_readme_map_lists_every_core_module():
    listed = _readme_map()
    modules = set()
    for path in (ROOT / "compress_core").rglob("*.py"):
        rel = path.relative_to(ROOT)
        modules.add(str(rel.parent) + "/" if path.name == "__init__.py" else str(rel))
    assert not modules - listed, f"not in the README's map: {sorted(modules - listed)}"
    stale = {p for p in listed if p.startswith("compress_core/")} - modules
    assert not stale, f"the README's map names modules that do not exist: {sorted(stale)}"


REGISTRIES = {
    "criteria": criteria.CRITERIA,
    "prune kinds": PRUNERS,
    "recovery levels": recover.RECOVERY,
    "runtimes": RUNTIMES,
    "executors": EXECUTORS,
}


def test_every_recipe_criterion_and_prune_kind_has_its_registered_class():
    assert set(recipe.CRITERIA) == set(criteria.CRITERIA)
    assert set(recipe.PRUNE_KINDS) - {"none"} == set(PRUNERS)
    assert recipe.RECOVERY_LEVELS == recover.LEVELS == tuple(recover.RECOVERY)
    for key, obj in criteria.CRITERIA.items():
        assert obj.key == key and obj.needs in (None, "images", "labels")
    for key, level in recover.RECOVERY.items():
        assert isinstance(level, recover.RecoveryLevel) and level.key == key and level.needs in (None, "images")
    for key, rt in RUNTIMES.items():  # a runtime needs nothing (eager PyTorch) or names its optional package
        assert rt.key == key and (rt.needs is None or rt.needs.isidentifier()), key
    for key, cls in EXECUTORS.items():  # executors are registered as classes: they take arguments
        assert isinstance(cls, type) and cls.key == key and (cls.needs is None or cls.needs.isidentifier()), key


@pytest.mark.parametrize("name", sorted(REGISTRIES))
def test_every_registered_entry_carries_its_vocabulary(name):
    registry = REGISTRIES[name]
    assert len(registry) > 0
    for key, entry in registry.items():
        assert entry.key == key
        assert isinstance(entry.label, str) and entry.label.strip(), f"{name}: {key} has no label"
        assert isinstance(entry.description, str) and entry.description.strip(), f"{name}: {key} has no description"
        assert entry.needs is None or (isinstance(entry.needs, str) and entry.needs), key
    assert registry.labels() == {k: e.label for k, e in registry.items()}
