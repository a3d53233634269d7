"""What the results store already holds that the solver can use instead of measuring it again.

The store is keyed by (model, recipe JSON, mode, runtime, latency batch) and the recipe holds its
recovery. So a stored row, a
sweep's (``run_sweep``, the Sweep page) or an earlier solve's, stands in for one of the solver's
measurements exactly when it is the same recipe with the same recovery, measured on the same evaluation
set, on the same runtime, at the same batch, and, under a latency limit, timed on as many threads as this
solve runs (the key does not hold the thread count: such a row is measured again, see ``timed_here``).

- ``held``: how many of the solver's uniform grid rows are in the store before it measures them (they are
  read back by ``run_sweep``, not measured);
- ``stored_uniform``: the store's other uniform recipes of this search space (one sparsity and one
  bit-width for the whole model, global or per-layer scope, of a kind, criterion and bit-width of the space,
  with its recovery; no fine-tuning, int8 kernels or per-layer overrides), e.g. a sweep's finer sparsity
  grid. They join the uniform grid at no measurement: the uniform best under the budget is chosen among them
  too, and each adds a point to the accuracy noise map and to the MACs-to-latency fit;
- ``final_held``: the uniform rows already measured in the final mode (``--eval full``), which join the
  best few that are verified in it.

What a sweep cannot seed: the profile's one-layer rows (a sweep never prunes one layer alone) and its
per-layer bytes and MACs (a sweep row holds the whole file's size only; they are computed, not measured).
Those stay in the solver's own cache beside the store.
"""

from __future__ import annotations

import torch

from compress_core.base.recipe import Recipe
from compress_core.study.solver.budget import Budget, SearchSpace
from compress_core.study.store import ResultStore
from compress_core.study.sweep import grid

MAX_EXTRA = 64  # stored uniform rows added beside the grid, at most (each costs one compression, no evaluation)


def timed_here(row: dict, budget: Budget) -> bool:
    """Whether a stored row's latency can be checked against ``budget``: always for a budget without a
    latency limit; with one, only a row timed at this solve's thread count."""
    if not budget.needs_latency:
        return True
    return row.get("latency_ms_p50") is not None and row.get("latency_threads") == torch.get_num_threads()


def held(store: ResultStore | None, model_id: str, recipes: list[Recipe], mode: str, budget: Budget) -> int:
    """How many of ``recipes`` the store holds, measured in ``mode`` on the budget's runtime, usable as they are."""
    return len(final_held(store, model_id, recipes, list(range(len(recipes))), mode, budget))


def is_uniform(recipe: Recipe, space: SearchSpace, recovery: str) -> bool:
    """A pruned uniform recipe of ``space`` with ``recovery``: exactly what ``sweep.grid`` builds for it."""
    p, q = recipe.prune, recipe.quant
    if not p.active or p.kind not in space.kinds or p.criterion != space.criterion or q.bits not in (*space.bits, 32):
        return False
    try:
        built = grid([p.kind], [p.sparsity], [q.bits], criterion=space.criterion, scope=p.scope, recovery=recovery)
    except ValueError:
        return False
    return built == [recipe]


def stored_uniform(
    store: ResultStore | None,
    model_id: str,
    space: SearchSpace,
    recovery: str,
    budget: Budget,
    known: list[Recipe],
    mode: str = "quick",
) -> list[Recipe]:
    """The store's uniform recipes of ``space`` (module docstring) measured in ``mode`` on the budget's runtime
    at its batch, other than ``known``; sorted by kind, scope, sparsity and bits (not by when they were stored)."""
    if store is None:
        return []
    frame = store.frame(model_id)
    seen = {r.to_json() for r in known}
    out: dict[str, Recipe] = {}
    for text in frame.loc[(frame["mode"] == mode) & (frame["runtime"] == budget.runtime), "recipe_json"]:
        recipe = Recipe.from_json(text)
        canonical = recipe.to_json()
        if canonical in seen or canonical in out or not is_uniform(recipe, space, recovery):
            continue
        row = store.get(model_id, canonical, mode, budget.batch, budget.runtime)
        if row is not None and timed_here(row, budget):
            out[canonical] = recipe
    ordered = sorted(
        out.values(), key=lambda r: (space.kinds.index(r.prune.kind), r.prune.scope, r.prune.sparsity, -r.quant.bits)
    )
    return ordered[:MAX_EXTRA]


def final_held(
    store: ResultStore | None, model_id: str, recipes: list[Recipe], indices: list[int], mode: str, budget: Budget
) -> list[int]:
    """Those of ``indices`` whose recipe the store holds measured in ``mode`` (the final one, for the verified
    uniform rows), usable as it is."""
    if store is None:
        return []
    out = []
    for i in indices:
        row = store.get(model_id, recipes[i].to_json(), mode, budget.batch, budget.runtime)
        if row is not None and timed_here(row, budget):
            out.append(i)
    return out


def describe(reuse: dict) -> str:
    """One note line: what the solve read from the results store instead of measuring."""
    text = (
        f"results store: {reuse['grid_from_store']} of {reuse['grid']} uniform grid rows reused "
        f"(measured before by a sweep or a solve), {reuse['grid'] - reuse['grid_from_store']} measured"
    )
    if reuse["extra_from_store"]:
        text += f"; {reuse['extra_from_store']} more stored uniform rows joined the grid"
    if reuse.get("verified_from_store"):
        text += f"; {reuse['verified_from_store']} uniform row(s) of the final evaluation reused"
    if reuse.get("retimed"):
        text += f"; {reuse['retimed']} stored row(s) timed on another thread count were timed again"
    return text
