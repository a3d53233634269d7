"""``solve``: the best recipe under a budget, found per layer and verified by measurement.

1. **Uniform grid** (the Sweep page's kind x sparsity x bits grid, plus the dense model), measured with
   ``sweep.run_sweep`` on the quick subset: the baseline to beat, and the dense latency with its
   MACs-to-latency fit (``candidates.fit_latency``).
2. **Profile** (``profile.build_profile``): each layer pruned alone and quantized alone, with recovery.
3. **Allocation** (``allocate``: multiple-choice knapsack by Lagrangian relaxation + greedy fill) at the
   budget and at tightened limits, each candidate's file written in memory to meet the size exactly
   (``candidates.plan``).
4. **Measure** the candidates end to end on the quick subset, keep the best that meets the budget, then
   **verify** it, and the best few uniform recipes, in the requested evaluation mode (``full``: the whole
   test set). Every measurement goes through ``run_sweep`` into the ``ResultStore`` when one is given, so a
   repeated solve reads them back; the one-layer profile rows go to a store file of their own beside it.
   A sweep's rows are read the same way (``reuse``): grid rows it measured with the same recipe, recovery,
   mode, runtime and batch are not measured again, and its other uniform
   rows of the search space join the grid, the noise map and the latency fit. ``Solution.reuse`` counts them.

Same inputs, same recipe: every step is seeded or exhaustive, ties broken by order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from compress_core.base.recipe import Recipe
from compress_core.base.records import Progress, check_eval_mode, span
from compress_core.bench.workbench import Workbench
from compress_core.study.solver.budget import Budget, SearchSpace, describe_violation, meets, violations
from compress_core.study.solver.candidates import Candidate, Context, exact, plan
from compress_core.study.solver.measured import (
    best_index,
    check_runtime,
    closest_index,
    measure_all,
    uniform_recipes,
    verify_uniform,
)
from compress_core.study.solver.predict import NoiseMap, fit_latency
from compress_core.study.solver.profile import Profile, build_profile, resolve_recovery, uniform_option
from compress_core.study.solver.refine import refine
from compress_core.study.solver.reuse import describe, held, stored_uniform
from compress_core.study.solver.solution import Solution, save, solutions_frame
from compress_core.study.store import ResultStore

__all__ = ["Solution", "check_runtime", "save", "solutions_frame", "solve"]


def _errors(predicted: dict, result: dict) -> dict:
    out = {}
    for key in ("accuracy", "size_bytes", "macs", "latency_ms_p50"):
        p, m = predicted.get(key), result.get(key)
        out[key] = None if p is None or m is None else float(m) - float(p)
    return out


def _predicted(c: Candidate, result: dict) -> dict:
    """The candidate's predictions, the accuracy from the measured dense accuracy of the same eval set."""
    return {"accuracy": float(result["dense_accuracy"]) - c.predicted["accuracy_drop"], **c.predicted}


def _profile_cache(store: ResultStore | None) -> ResultStore | None:
    if store is None:
        return None
    return ResultStore(Path(store.path).with_name(Path(store.path).stem + "-solver-profile.sqlite"))


def _check_threads(budget: Budget) -> None:
    if budget.threads is not None and budget.threads != torch.get_num_threads():
        raise ValueError(
            f"the budget times latency on {budget.threads} threads but torch runs {torch.get_num_threads()}: "
            "set torch.set_num_threads first (CLI: --threads)"
        )


def _smallest_check(wb: Workbench, budget: Budget, space: SearchSpace) -> list[str]:
    """Before any measurement: the smallest recipe of the space (every layer at the highest sparsity and the
    fewest bits) written in memory; a size or MAC limit below it is infeasible, by that much."""
    least = {"size_bytes": float("inf"), "macs": float("inf")}
    for kind in space.kinds:
        size, macs = exact(wb, uniform_option(kind, space.sparsities[-1], space.bits[0], space))
        least = {"size_bytes": min(least["size_bytes"], size), "macs": min(least["macs"], macs)}
    out = []
    for key in ("size_bytes", "macs"):
        limit = budget.resources.get(key)
        if limit is not None and least[key] > limit:
            v = {
                "constraint": key,
                "limit": limit,
                "measured": least[key],
                "over": least[key] - limit,
                "over_pct": 100 * (least[key] - limit) / limit,
            }
            out.append(describe_violation(v, "the smallest recipe in the search space"))
    return out


def solve(
    model_id: str,
    budget: Budget,
    space: SearchSpace | None = None,
    mode: str = "quick",
    store: ResultStore | None = None,
    workbench: Workbench | None = None,
    progress: Progress | None = None,
    refine_rounds: int = 2,
    executor: object = None,
) -> Solution:
    """The most accurate recipe under ``budget`` (or the smallest under an accuracy floor alone), verified
    in ``mode``, beside the best uniform grid recipe under the same budget. See the module docstring.
    ``executor`` (a Ray address or an ``executors.Executor``) measures the uniform grid, the candidates and
    the verification on its workers (this process writes the store); the per-layer profile stays here."""
    t0 = time.perf_counter()
    space = space or SearchSpace()
    check_eval_mode(mode)
    extra = {**check_runtime(budget), **({"executor": executor} if executor is not None else {})}
    _check_threads(budget)
    wb = workbench or Workbench(model_id)
    if wb.model_id != model_id:
        raise ValueError(f"the workbench holds {wb.model_id!r}, not {model_id!r}")
    early = _smallest_check(wb, budget, space)
    if early:
        return Solution.infeasible_before_measuring(model_id, budget.to_dict(), space.to_dict(), mode, early)
    uniform, quick, reuse = _uniform_grid(wb, budget, space, store, extra, span(progress, 0.0, 0.3))
    ctx = _context(wb, budget, space, store, uniform, quick, span(progress, 0.3, 0.7))
    cands = plan(ctx)
    seed = _uniform_seed(ctx, uniform, quick)
    cands += [seed] if seed is not None and all(c.recipe != seed.recipe for c in cands) else []

    def measure(recipes: list[Recipe], lo: float, hi: float, what: str) -> list[dict]:
        return measure_all(wb, recipes, "quick", budget, store, extra, span(progress, lo, hi), what) if recipes else []

    measured = measure([c.recipe for c in cands], 0.7, 0.8, "candidates")
    cands, measured = _refined(ctx, cands, measured, refine_rounds, lambda rs: measure(rs, 0.8, 0.85, "refining"))
    sol = _choose(ctx, mode, cands, measured, store, extra, progress)
    sol.uniform_best = verify_uniform(wb, budget, quick, uniform, mode, store, extra, span(progress, 0.95, 1.0), reuse)
    sol.reuse = reuse
    sol.notes.insert(-1, describe(reuse))
    _prefer_uniform(ctx, sol)
    sol.uniform_rows = [
        {"recipe_json": u.to_json(), "label": u.label(), **r} for u, r in zip(uniform, quick, strict=True)
    ]
    sol.seconds = time.perf_counter() - t0
    if progress is not None:
        progress(1.0, f"solved in {sol.seconds:.0f} s")
    return sol


def _uniform_grid(wb, budget: Budget, space: SearchSpace, store, extra: dict, progress):
    """The uniform grid, with the store's other uniform rows of the space after it (``reuse``), measured on the
    quick subset (stored rows read back), and the reuse counts."""
    recovery = resolve_recovery(wb.model, space.recovery)
    uniform = uniform_recipes(space, recovery)
    reuse = {"grid": len(uniform), "grid_from_store": held(store, wb.model_id, uniform, "quick", budget)}
    more = stored_uniform(store, wb.model_id, space, recovery, budget, uniform)
    reuse["extra_from_store"] = len(more)
    quick = measure_all(wb, uniform + more, "quick", budget, store, extra, progress, "uniform grid", reuse)
    return uniform + more, quick, reuse


def _prefer_uniform(ctx: Context, sol: Solution) -> None:
    """A uniform recipe is one point of the per-layer space: when the verified uniform best beats the
    verified answer on the final evaluation, it is the answer."""
    u, r = sol.uniform_best, sol.result
    if u is None or r is None or not sol.feasible or u["accuracy"] <= r["accuracy"]:
        return
    recipe = Recipe.from_json(u["recipe_json"])
    cand = predict_recipe(ctx, recipe, recipe.prune.kind, "uniform (verified)")
    result = {k: v for k, v in u.items() if k != "recipe_json"}
    sol.recipe, sol.result = recipe.to_dict(), result
    sol.predicted = _predicted(cand, result)
    sol.prediction_error = _errors(sol.predicted, result)
    sol.notes[-1] = "returned: the uniform (verified) candidate: the best uniform recipe beat the per-layer answers"


def _context(wb, budget, space, store, uniform: list[Recipe], quick: list[dict], progress) -> Context:
    """The profile (its one-layer rows cached beside ``store``) and the fitted predictors."""
    cache = _profile_cache(store)
    try:
        profile = build_profile(wb, space, "quick", cache, progress)
    finally:
        if cache is not None:
            cache.close()
    noise_map = fit_noise_map(wb, profile, uniform, quick)
    latency = fit_latency(quick[0].get("latency_ms_p50"), quick, profile.dense_macs)
    return Context(wb, profile, budget, space, noise_map, latency)


def fit_noise_map(wb: Workbench, profile: Profile, uniform: list[Recipe], quick: list[dict]) -> NoiseMap:
    """Accuracy drop against predicted noise, over the one-layer points and the measured uniform grid."""
    points = [(p["noise"], p["accuracy_drop"]) for p in profile.points]
    for recipe, res in zip(uniform, quick, strict=True):
        if recipe.compressed:
            comp = wb.compress(recipe.with_recovery("none"))
            points.append((profile.noise_of(comp, wb.model), res["dense_accuracy"] - res["accuracy"]))
    return NoiseMap.fit(points)


def predict_recipe(ctx: Context, recipe: Recipe, kind: str, source: str) -> Candidate:
    """A candidate for any recipe: its noise from the profile's gains, its file and MACs exactly."""
    comp = ctx.wb.compress(recipe.with_recovery("none"))
    noise = ctx.profile.noise_of(comp, ctx.wb.model)
    size, macs = exact(ctx.wb, recipe)
    predicted = {
        "accuracy_drop": ctx.noise_map.drop(noise),
        "noise": noise,
        "size_bytes": size,
        "macs": macs,
        "latency_ms_p50": ctx.latency.predict(macs, ctx.profile.dense_macs),
    }
    return Candidate(recipe, kind, source, {}, predicted, size, macs)


def _uniform_seed(ctx: Context, uniform: list[Recipe], quick: list[dict]) -> Candidate | None:
    """The best uniform recipe under the budget (quick): a uniform recipe is one point of the per-layer
    space, so the answer is never worse than it on the data the candidates are compared on."""
    best = best_index(quick, ctx.budget)
    if best is None:
        return None
    return predict_recipe(ctx, uniform[best], uniform[best].prune.kind, "uniform")


def _refined(ctx: Context, cands: list[Candidate], measured: list[dict], rounds: int, measure_fn):
    """The candidates plus what the measured local search (``refine``) tried around the best allocation."""
    allocated = [i for i, c in enumerate(cands) if c.picks and meets(ctx.budget, measured[i])]
    if not allocated or rounds < 1:
        return cands, measured
    start = max(allocated, key=lambda i: (measured[i]["accuracy"], measured[i].get("agreement") or 0.0, -i))
    more = refine(ctx, cands[start], measured[start], measure_fn, rounds)
    return cands + [c for c, _ in more], measured + [r for _, r in more]


def _notes(ctx: Context, cands: list[Candidate]) -> list[str]:
    notes = [
        f"profile on {len(ctx.profile.layers)} layers, recovery {ctx.profile.recovery}, quick subset; "
        f"{len(cands)} candidate(s) measured end to end"
    ]
    if ctx.budget.needs_latency and ctx.latency.c0 >= 0.999:
        notes.append(
            "latency does not change with MACs in the measured grid (no structured points): "
            "the latency limit is checked by measurement only"
        )
    return notes


def _choose(ctx: Context, mode: str, cands: list[Candidate], measured: list[dict], store, extra, progress) -> Solution:
    """Keep the best measured candidate that meets the budget, verify it in ``mode``, predict and compare."""
    wb, budget = ctx.wb, ctx.budget
    rows = [
        {
            "recipe_json": c.recipe.to_json(),
            "label": c.recipe.label(),
            "kind": c.kind,
            "source": c.source,
            "predicted": _predicted(c, m),
            **m,
        }
        for c, m in zip(cands, measured, strict=True)
    ]
    base: dict[str, Any] = {
        "model_id": wb.model_id,
        "budget": budget.to_dict(),
        "space": ctx.space.to_dict(),
        "mode": mode,
        "candidates": rows,
        "notes": _notes(ctx, cands),
        "uniform_best": None,
    }
    if not cands:
        return Solution(
            recipe=None,
            result=None,
            predicted={},
            prediction_error={},
            feasible=False,
            infeasible=_no_allocation(ctx),
            **base,
        )
    best = best_index(measured, budget)
    cand = cands[best if best is not None else closest_index(measured, budget)]
    base["notes"].append(f"returned: the {cand.source} candidate")
    result = (
        measured[cands.index(cand)]
        if mode == "quick"
        else measure_all(wb, [cand.recipe], mode, budget, store, extra, span(progress, 0.85, 0.95), "verifying")[0]
    )
    predicted = _predicted(cand, result)
    what = "the solver's best recipe" + ("" if mode == "quick" else f" ({mode} evaluation)")
    broken = violations(budget, result)
    return Solution(
        recipe=cand.recipe.to_dict(),
        result=result,
        predicted=predicted,
        prediction_error=_errors(predicted, result),
        feasible=not broken,
        infeasible=[describe_violation(v, what) for v in broken],
        **base,
    )


def _no_allocation(ctx: Context) -> list[str]:
    """Why no per-layer choice fits: the least each limited resource can be, against its limit."""
    profile, budget, latency = ctx.profile, ctx.budget, ctx.latency
    t = profile.table
    least = {
        "size_bytes": profile.overhead_bytes + t.groupby("layer")["size_bytes"].min().sum(),
        "macs": float(t.groupby("layer")["macs"].min().sum()),
    }
    if budget.max_latency_ms is not None:
        least["latency_ms_p50"] = latency.predict(least["macs"], profile.dense_macs)
    out = []
    for key, limit in budget.resources.items():
        low = least.get(key)
        if low is not None and low > limit:
            out.append(
                describe_violation(
                    {
                        "constraint": key,
                        "limit": limit,
                        "measured": low,
                        "over": low - limit,
                        "over_pct": 100 * (low - limit) / limit,
                    },
                    "the smallest recipe in the search space",
                    "is predicted at",
                )
            )
    return out or ["no per-layer choice meets every limit at once in this search space"]
