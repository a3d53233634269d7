"""Sweeps: a grid of recipes, measured by an executor, resumable through a ResultStore.

``grid`` builds the deduplicated cartesian product of pruning kinds x sparsities x bit-widths;
``run_sweep`` measures each recipe on an executor (``compress_core.study.executors``): in this process on
one shared Workbench by default (one importance sort per criterion, dense predictions and latency per
structure are all shared), or as Ray tasks on a local Ray or a cluster (one cached Workbench per
worker). This process alone writes each finished row to the store, at once, and skips rows the store
already holds. ``measure_recipes`` is the same path returning Result dicts (for the budget solver).
``pareto_front`` picks the non-dominated rows; ``mark_fronts`` flags the fronts a sweep's table shows
(accuracy vs file size and vs latency) over the rows that beat chance level (``at_chance``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from contextlib import closing

import numpy as np
import pandas as pd

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.bench.workbench import Workbench
from compress_core.models import get_spec
from compress_core.study.executors import Executor, InProcessExecutor, Settings, make_executor
from compress_core.study.store import ResultStore, result_row, rows_frame

OnResult = Callable[[int, int, dict], None]


def grid(
    kinds: list[str],
    sparsities: list[float],
    bits: list[int],
    criterion: str = "l1",
    scope: str = "global",
    int8: bool = False,
    recovery: str = "none",
) -> list[Recipe]:
    """Every (kind, sparsity, bits) recipe once, in input order.

    Kind ``none`` ignores sparsity, and sparsity 0 with a pruning kind is the same dense recipe,
    so each collapses to the canonical unpruned ``PruneSpec()``. With ``int8=True`` every 8-bit
    point is followed by the same recipe on real int8 kernels. ``recovery`` applies to every compressed
    point (the dense point has nothing to recover).
    """
    for name, values in (("kinds", kinds), ("sparsities", sparsities), ("bits", bits)):
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"a sweep grid needs a non-empty list of {name}; got {values!r}")
    if not isinstance(int8, bool):
        raise ValueError(f"int8 must be true or false; got {int8!r}")
    out: dict[Recipe, None] = {}
    for kind in kinds:
        for sparsity in sparsities:
            prune = PruneSpec(kind=kind, criterion=criterion, scope=scope, sparsity=sparsity)  # validates
            if not prune.active:
                prune = PruneSpec()
            for b in bits:
                for quant in (QuantSpec(bits=b), *((QuantSpec(bits=8, int8=True),) if int8 and b == 8 else ())):
                    r = Recipe(prune=prune, quant=quant)
                    out.setdefault(r.with_recovery(recovery) if r.compressed else r)
    return list(out)


def _check_recipes(recipes: Sequence[Recipe]) -> None:
    """Fail before the first measurement, not an hour into a sweep."""
    for r in recipes:
        if not isinstance(r, Recipe):
            raise ValueError(f"run_sweep needs Recipe objects; got {type(r).__name__}")


def _settings(
    model_id: str,
    mode: str,
    latency_batch: int,
    latency_budget_s: float,
    workbench: Workbench | None,
    executor: str | Executor | None,
    runtime: str = "torch",
) -> Settings:
    """Validate everything before the first measurement (an unknown model lists the zoo)."""
    if workbench is None:
        get_spec(model_id)
    settings = Settings(mode, latency_batch, latency_budget_s, runtime)
    if workbench is not None:
        if workbench.model_id != model_id:
            raise ValueError(f"the workbench holds {workbench.model_id!r}, not {model_id!r}")
        if executor is not None and not isinstance(executor, InProcessExecutor) and executor != "inprocess":
            raise ValueError(
                "a Workbench measures in this process; a Ray sweep builds one per worker from the "
                "model id, so pass workbench=None with a Ray executor"
            )
    return settings


def _outcomes(
    model_id: str,
    recipes: list[Recipe],
    settings: Settings,
    store: ResultStore | None,
    workbench: Workbench | None,
    executor: str | Executor | None,
    should_stop: Callable[[], bool] | None,
) -> Generator[tuple[int, dict | None, bool, str], None, None]:
    """``(index, result dict or None, cached, error)`` per recipe: stored ones first (read back), then
    the rest as the executor finishes them, each committed to ``store`` by this process (the driver)
    before it is yielded. The executor (and the model) is started only if some recipe is not stored."""
    todo = []
    for i, recipe in enumerate(recipes):
        stored = (
            store.get(model_id, recipe.to_json(), settings.mode, settings.latency_batch, settings.runtime)
            if store is not None
            else None
        )
        if stored is None:
            todo.append(i)
            continue
        if should_stop is not None and should_stop():
            return
        yield i, stored, True, ""
    if not todo:
        return
    owned = not isinstance(executor, Executor)
    if executor is None or executor == InProcessExecutor.key:
        ex: Executor = InProcessExecutor(workbench, make_workbench=Workbench)
    else:
        ex = make_executor(executor)
    try:
        with closing(ex.measure(model_id, [recipes[i] for i in todo], settings, should_stop)) as stream:
            for out in stream:
                i = todo[out.index]
                if out.result is not None and store is not None:
                    key = (model_id, recipes[i].to_json(), settings.mode, settings.latency_batch)
                    store.put(*key, out.result, runtime=settings.runtime)
                yield i, out.result, False, out.error
    finally:
        if owned:
            ex.close()


def run_sweep(
    model_id: str,
    recipes: list[Recipe],
    mode: str = "quick",
    latency_batch: int = 1,
    latency_budget_s: float = 0.3,
    on_result: OnResult | None = None,
    store: ResultStore | None = None,
    workbench: Workbench | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor: str | Executor | None = None,
    runtime: str = "torch",
) -> pd.DataFrame:
    """Measure each recipe on ``model_id``; one wide row per recipe (``store.COLUMNS``), in input order.

    Rows already in ``store`` for (model_id, recipe, mode, latency_batch) are read back
    (``cached=True``) instead of recomputed; every new row is committed to the store by this process as
    soon as it comes back, so an interrupted sweep resumes where it stopped. ``on_result(i, n, row)``
    is called after each row with ``i`` = rows finished so far (1..n): stored rows first, then new ones
    as they finish. ``should_stop()`` is checked before each recipe (Ray: between results); when it
    returns True the rows finished so far are returned. The model is loaded only if some recipe is not
    in the store.

    ``executor``: None or ``"inprocess"`` (on ``workbench``, or one built here), a Ray address
    (``"local"``, ``"auto"``, ``"host:6379"``, ``"ray://host:10001"``) or an ``executors.Executor``
    (left open for the caller to reuse). Configs lost to dying workers after every retry have no row;
    ``df.attrs["failed"]`` lists them (``recipe_json``, ``label``, ``error``, ``attempts``).
    ``runtime``: measure on that deployment runtime (``deploy.RuntimeBench.evaluate``); its rows say so in
    their ``runtime`` column and are stored under it, apart from eager PyTorch's.
    """
    settings = _settings(model_id, mode, latency_batch, latency_budget_s, workbench, executor, runtime)
    recipes = list(recipes)
    _check_recipes(recipes)
    rows: dict[int, dict] = {}
    failed: list[dict] = []
    outcomes = _outcomes(model_id, recipes, settings, store, workbench, executor, should_stop)
    with closing(outcomes):  # an exception in on_result (Ctrl-C) stops the executor at once
        for i, result, cached, error in outcomes:
            recipe_json = recipes[i].to_json()
            if result is None:
                failed.append({"recipe_json": recipe_json, "label": recipes[i].label(), "error": error})
                continue
            rows[i] = result_row(result, recipe_json, settings.mode, cached=cached, runtime=settings.runtime)
            if on_result is not None:
                on_result(len(rows), len(recipes), rows[i])
    df = rows_frame([rows[i] for i in sorted(rows)])
    df.attrs["failed"] = failed
    return df


def measure_recipes(
    model_id: str,
    recipes: Sequence[Recipe],
    executor: str | Executor | None = None,
    mode: str = "quick",
    latency_batch: int = 1,
    latency_budget_s: float = 0.3,
    on_result: Callable[[int, Recipe, dict | None], None] | None = None,
    store: ResultStore | None = None,
    should_stop: Callable[[], bool] | None = None,
    runtime: str = "torch",
) -> list[dict | None]:
    """``Result.to_dict()`` of each recipe (with where it ran), aligned with ``recipes``; None for a
    recipe lost to dying workers (or not reached before ``should_stop``). The same path as
    ``run_sweep`` (store read first and written by this process only); ``on_result(index, recipe,
    result)`` is called as each one comes back. For callers that want Results, not table rows."""
    settings = _settings(model_id, mode, latency_batch, latency_budget_s, None, executor, runtime)
    recipes = list(recipes)
    _check_recipes(recipes)
    out: list[dict | None] = [None] * len(recipes)
    with closing(_outcomes(model_id, recipes, settings, store, None, executor, should_stop)) as outcomes:
        for i, result, _cached, _error in outcomes:
            out[i] = result
            if on_result is not None:
                on_result(i, recipes[i], result)
    return out


def mark_pareto(
    df: pd.DataFrame, x: str = "size_bytes", y: str = "accuracy", minimize_x: bool = True, maximize_y: bool = True
) -> pd.Series:
    """True for rows no other row dominates (at least as good in x and y, strictly better in one).
    Rows with a missing x or y are never on the front; exact duplicates are both kept."""
    for col in (x, y):
        if col not in df.columns:
            raise ValueError(f"column {col!r} is not in the table; columns: {', '.join(map(str, df.columns))}")
    xs = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)
    xs = xs if minimize_x else -xs  # from here on: smaller is better on both axes
    ys = -ys if maximize_y else ys
    on_front = np.zeros(len(df), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(xs) | np.isnan(ys)))
    order = valid[np.lexsort((ys[valid], xs[valid]))]  # by x, then y, best first
    best_before = math.inf  # best y among strictly smaller x
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and xs[order[j]] == xs[order[i]]:
            j += 1
        group = order[i:j]
        group_best = ys[group].min()
        for k in group:  # same x: dominated by a strictly better y here, or by any y <= it at smaller x
            on_front[k] = ys[k] < best_before and ys[k] == group_best
        best_before = min(best_before, group_best)
        i = j
    return pd.Series(on_front, index=df.index, name="pareto")


def pareto_front(
    df: pd.DataFrame, x: str = "size_bytes", y: str = "accuracy", minimize_x: bool = True, maximize_y: bool = True
) -> pd.DataFrame:
    """The non-dominated rows, sorted by ``x`` (ascending)."""
    front = df[mark_pareto(df, x, y, minimize_x, maximize_y)]
    return front.sort_values(x, kind="stable")


FRONTS = {"pareto_size": "size_bytes", "pareto_latency": "latency_ms_p50"}  # flag column -> the x it trades


def at_chance(df: pd.DataFrame, classes: int) -> pd.Series:
    """True for rows whose accuracy does not beat guessing: the 95 % CI's lower end (the accuracy itself
    where a row has no CI) at or below chance level, 1 / ``classes``."""
    return df["accuracy_ci_low"].fillna(df["accuracy"]) <= 1.0 / max(classes, 1)


def mark_fronts(df: pd.DataFrame, classes: int) -> pd.DataFrame:
    """A copy of ``df`` with ``chance`` (``at_chance``) and one Pareto flag per ``FRONTS`` entry (accuracy vs
    that column), each front taken over the rows that beat chance: a chance-level model is never on a
    front, however small or fast it is."""
    out = df.copy()
    out["chance"] = at_chance(out, classes)
    useful = out[~out["chance"]]
    for flag, x in FRONTS.items():
        out[flag] = mark_pareto(useful, x, "accuracy").reindex(out.index, fill_value=False).astype(bool)
    return out


def size_vs_dense(df: pd.DataFrame) -> pd.Series:
    """How many times smaller each row's file is than the dense model's: the dense artefact's bytes where
    they were measured, else the dense model's size."""
    dense_file = df["dense_artifact_bytes"].where(df["dense_artifact_bytes"].notna(), df["dense_size_bytes"])
    return dense_file / df["size_bytes"]


def shared_latency_ms(df: pd.DataFrame) -> float | None:
    """The latency all rows share when every measured one lies within 0.5 % of the largest (unstructured
    zeros and simulated bits run the dense fp32 kernels); None for fewer than two, or when they differ."""
    lat = df["latency_ms_p50"].dropna()
    if len(lat) > 1 and lat.max() - lat.min() <= 1e-9 + 0.005 * lat.max():
        return float(lat.iloc[0])
    return None
