"""Measuring recipes for the solver through ``sweep.run_sweep`` (so every row goes to the store), and
picking among measured results: the uniform grid, the best under a budget, the closest miss.

``UNIFORM_VERIFIED`` uniform recipes (the most accurate on the quick subset that meet the budget) are
re-measured in the final evaluation mode, so the uniform best is chosen on the same data as the answer;
uniform recipes the results store already holds in that mode join them at no cost (``reuse``). A stored row
timed on another thread count than this solve's is timed again under a latency limit (and not written back).
"""

from __future__ import annotations

import inspect

from compress_core.base.recipe import Recipe
from compress_core.base.records import Progress
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.deploy.bench import RuntimeBench
from compress_core.study.solver.budget import Budget, SearchSpace, meets, violations
from compress_core.study.solver.reuse import final_held, timed_here
from compress_core.study.store import ResultStore
from compress_core.study.sweep import grid, measure_recipes, run_sweep

UNIFORM_VERIFIED = 3  # uniform recipes re-measured in the final mode (best quick accuracy first)


def check_runtime(budget: Budget) -> dict:
    """Extra ``run_sweep`` arguments for the budget's runtime; ValueError for one it cannot measure on."""
    from compress_core.deploy.runtimes import RUNTIMES

    if budget.runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {budget.runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if budget.runtime == "torch":
        return {}
    if "runtime" in inspect.signature(run_sweep).parameters:
        return {"runtime": budget.runtime}
    raise ValueError(f"latency on runtime {budget.runtime!r} cannot be measured by this sweep; use runtime torch")


def measure_all(
    wb: Workbench,
    recipes: list[Recipe],
    mode: str,
    budget: Budget,
    store: ResultStore | None,
    extra: dict,
    progress: Progress | None,
    what: str,
    tally: dict | None = None,
) -> list[dict]:
    """Full result dicts (``Result.to_dict()`` keys) of ``recipes`` measured by ``run_sweep``; with
    ``extra["executor"]`` (e.g. a Ray address) on that executor's workers, the store written here.
    ``tally["retimed"]`` counts the stored rows timed again here (``reuse.timed_here``)."""
    if extra.get("executor") is not None:
        return _on_executor(wb, recipes, mode, budget, store, extra, progress, what)

    def on_result(i: int, n: int, _row: dict) -> None:
        if progress is not None:
            progress(i / max(n, 1), f"{what}: {i} of {n} measured")

    run_sweep(
        wb.model_id,
        recipes,
        mode=mode,
        latency_batch=budget.batch,
        on_result=on_result,
        store=store,
        workbench=wb,
        **extra,
    )
    runtime = extra.get("runtime", "torch")
    out, settings = [], MeasureSettings(mode, budget.batch)
    for r in recipes:
        res = store.get(wb.model_id, r.to_json(), mode, budget.batch, runtime) if store is not None else None
        if res is not None and not timed_here(res, budget):  # timed on another thread count: time it here
            res = None
            if tally is not None:
                tally["retimed"] = tally.get("retimed", 0) + 1
        if res is None:
            hit = wb.peek(r, settings) if runtime == "torch" else None
            res = (hit if hit is not None else RuntimeBench.of(wb).evaluate(r, runtime, settings)).to_dict()
        out.append(res)
    return out


def _on_executor(wb: Workbench, recipes, mode, budget: Budget, store, extra: dict, progress, what: str) -> list[dict]:
    done = [0]

    def on_result(_i: int, _recipe: Recipe, _result: dict | None) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0] / max(len(recipes), 1), f"{what}: {done[0]} of {len(recipes)} measured")

    options = {k: v for k, v in extra.items() if k != "executor"}
    results = measure_recipes(
        wb.model_id,
        recipes,
        executor=extra["executor"],
        mode=mode,
        latency_batch=budget.batch,
        on_result=on_result,
        store=store,
        **options,
    )
    lost = [r.label() for r, res in zip(recipes, results, strict=True) if res is None]
    if lost:
        raise ValueError(f"{len(lost)} recipe(s) were lost on the executor (workers died twice): {', '.join(lost[:3])}")
    return [res for res in results if res is not None]


def uniform_recipes(space: SearchSpace, recovery: str) -> list[Recipe]:
    recipes = grid(
        list(space.kinds),
        [0.0, *space.uniform_sparsities],
        [*space.bits, 32],
        criterion=space.criterion,
        recovery=recovery,
    )
    return [Recipe(), *[r for r in recipes if r != Recipe()]]


def best_index(results: list[dict], budget: Budget) -> int | None:
    """Index of the most accurate result meeting the budget (accuracy floor only: the smallest file)."""
    ok = [i for i, r in enumerate(results) if meets(budget, r)]
    if not ok:
        return None
    if not budget.resources:
        return min(ok, key=lambda i: (results[i]["size_bytes"], -results[i]["accuracy"], i))
    return max(ok, key=lambda i: (results[i]["accuracy"], -results[i]["size_bytes"], -i))


def closest_index(results: list[dict], budget: Budget) -> int:
    """The result that misses the budget by the least (summed relative overshoot)."""

    def miss(i: int) -> float:
        return sum((v["over_pct"] or 1e9) for v in violations(budget, results[i]))

    return min(range(len(results)), key=lambda i: (miss(i), i))


def verify_uniform(wb, budget, quick: list[dict], recipes: list[Recipe], mode, store, extra, progress, tally=None):
    """The best uniform recipe under the budget, measured in ``mode``: its best few by quick accuracy, and any
    other that meets the budget on quick and is stored in ``mode`` already (``tally["verified_from_store"]``)."""
    ok = [i for i, r in enumerate(quick) if meets(budget, r) and not recipes[i].is_dense]
    if budget.max_drop_pp is not None and meets(budget, quick[0]):
        ok.append(0)  # the dense model itself meets an accuracy floor
    if not ok:
        return None
    ranked = sorted(ok, key=lambda i: (-quick[i]["accuracy"], quick[i]["size_bytes"], i))
    order = ranked[:UNIFORM_VERIFIED]
    if mode == "quick":
        best = best_index([quick[i] for i in order], budget)
        return None if best is None else {"recipe_json": recipes[order[best]].to_json(), **quick[order[best]]}
    stored = final_held(store, wb.model_id, recipes, ranked, mode, budget)
    order += [i for i in stored if i not in order]
    if tally is not None:
        tally["verified_from_store"] = len(stored)
    picked = [recipes[i] for i in order]
    final = measure_all(wb, picked, mode, budget, store, extra, progress, "uniform, verified", tally)
    best = best_index(final, budget)
    return None if best is None else {"recipe_json": recipes[order[best]].to_json(), **final[best]}
