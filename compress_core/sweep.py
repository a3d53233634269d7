"""Sweeps: a grid of recipes, evaluated on one shared Workbench, resumable through a ResultStore.

``grid`` builds the deduplicated cartesian product of pruning kinds x sparsities x bit-widths;
``run_sweep`` measures each recipe (one importance sort per criterion, dense predictions and
latency per structure are all shared by the Workbench), writes each finished row to the store at
once, and skips rows the store already holds. ``pareto_front`` picks the non-dominated rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .models import get_spec
from .pipeline import Workbench
from .recipe import PruneSpec, QuantSpec, Recipe
from .records import check_eval_mode
from .store import ResultStore, result_row, rows_frame

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


def _check_args(mode: str, latency_batch: int, latency_budget_s: float) -> None:
    check_eval_mode(mode)
    if isinstance(latency_batch, bool) or not isinstance(latency_batch, int) or latency_batch < 1:
        raise ValueError(f"latency_batch must be a positive integer; got {latency_batch!r}")
    if (
        isinstance(latency_budget_s, bool)
        or not isinstance(latency_budget_s, (int, float))
        or not math.isfinite(latency_budget_s)
        or latency_budget_s <= 0
    ):
        raise ValueError(f"latency_budget_s must be a positive number of seconds; got {latency_budget_s!r}")


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
) -> pd.DataFrame:
    """Measure each recipe on ``model_id``; one wide row per recipe (``store.COLUMNS``).

    Rows already in ``store`` for (model_id, recipe, mode, latency_batch) are read back
    (``cached=True``) instead of recomputed; every new row is committed to the store as soon as it
    is measured, so an interrupted sweep resumes where it stopped. ``on_result(i, n, row)`` is
    called after each row with ``i`` = rows finished so far (1..n). ``should_stop()`` is checked
    before each recipe; when it returns True the rows finished so far are returned.
    The model is loaded only if some recipe is not in the store.
    """
    if workbench is None:
        get_spec(model_id)  # unknown model -> ValueError listing the zoo
    _check_args(mode, latency_batch, latency_budget_s)
    recipes = list(recipes)
    _check_recipes(recipes)
    if workbench is not None and workbench.model_id != model_id:
        raise ValueError(f"the workbench holds {workbench.model_id!r}, not {model_id!r}")
    wb = workbench
    rows: list[dict] = []
    n = len(recipes)
    for recipe in recipes:
        if should_stop is not None and should_stop():
            break
        recipe_json = recipe.to_json()
        result = store.get(model_id, recipe_json, mode, latency_batch) if store is not None else None
        cached = result is not None
        if result is None:
            if wb is None:
                wb = Workbench(model_id)
            result = wb.evaluate(
                recipe, mode=mode, latency_batch=latency_batch, latency_budget_s=latency_budget_s
            ).to_dict()
            if store is not None:
                store.put(model_id, recipe_json, mode, latency_batch, result)
        row = result_row(result, recipe_json, mode, cached=cached)
        rows.append(row)
        if on_result is not None:
            on_result(len(rows), n, row)
    return rows_frame(rows)


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
