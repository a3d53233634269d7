"""Measured refinement: a few rounds of local search around the best measured candidate.

The per-layer costs add up only approximately (the layers' errors interact), so after the allocation the
solver measures, end to end on the quick subset, the most promising *trades*: one layer one step up (a
lower sparsity or a wider bit-width: more bytes, less error) paid for by another layer one step down,
ranked by the candidate's own cost column and kept only where the real file still meets the size and MAC
limits. The best trade that beats the current accuracy (ties: the higher agreement with the dense model)
is taken; the search stops after ``rounds`` rounds or when no trade improves. Deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

from compress_core.base.recipe import Recipe
from compress_core.engine.prune import PRUNERS
from compress_core.engine.prune.layers import prunable_layers
from compress_core.study.solver.candidates import Candidate, Context, exact, predict, recipe_of, resource_limits, tables

Measure = Callable[[list[Recipe]], list[dict]]
CHECKS_PER_TRADE = 4  # real files written per trade measured, at most (a file is ~1 s on ResNet-20)


def _steps(opts: list[tuple[float, int]], j: int) -> list[int]:
    """Option indices one step away from ``opts[j]``: the neighbouring sparsity at the same bits, the
    neighbouring bit-width at the same sparsity."""
    s, b = opts[j]
    sparsities = sorted({o[0] for o in opts})
    bits = sorted({o[1] for o in opts})
    out = []
    si, bi = sparsities.index(s), bits.index(b)
    for s2, b2 in (
        (sparsities[si - 1] if si > 0 else None, b),
        (sparsities[si + 1] if si + 1 < len(sparsities) else None, b),
        (s, bits[bi - 1] if bi > 0 else None),
        (s, bits[bi + 1] if bi + 1 < len(bits) else None),
    ):
        if s2 is not None and b2 is not None and (s2, b2) in opts:
            out.append(opts.index((s2, b2)))
    return out


def _trades(choice: list[int], opts, rows, metric: str) -> list[tuple[float, int, int, int, int]]:
    """(cost change, layer up, option, layer down, option) pairs that keep the predicted bytes, the least
    predicted cost change first (after the allocation, every one is >= 0 by the model: it is the model's
    errors the measurement looks for)."""
    ups: list[tuple[int, int, float, float]] = []
    downs: list[tuple[int, int, float, float]] = []
    for i, j in enumerate(choice):
        here = rows[i][j]
        for k in _steps(opts[i], j):
            d_cost, d_bytes = rows[i][k][metric] - here[metric], rows[i][k]["size_bytes"] - here["size_bytes"]
            (ups if d_bytes > 0 else downs).append((i, k, d_cost, d_bytes))
    out = []
    for i, k, dc_up, db_up in ups:
        for i2, k2, dc_down, db_down in downs:
            if i2 != i and db_up + db_down <= 0:  # the model's local optimum has none < 0: measure the nearest
                out.append((dc_up + dc_down, i, k, i2, k2))
    return sorted(out)


def _proposals(
    ctx: Context, start: Candidate, choice: list[int], table, metric: str, limits: dict, tried: set[str], per_round: int
) -> list[tuple[list[int], Candidate]]:
    """Up to ``per_round`` untried trades whose real file meets the limits (at most ``CHECKS_PER_TRADE`` x
    ``per_round`` files written)."""
    opts, rows = table
    layers = ctx.profile.layers
    batch: list[tuple[list[int], Candidate]] = []
    checks = 0
    for _, i, k, i2, k2 in _trades(choice, opts, rows, metric):
        trial = list(choice)
        trial[i], trial[i2] = k, k2
        picks = {n: opts[x][trial[x]] for x, n in enumerate(layers)}
        recipe = recipe_of(start.kind, picks, ctx.space, ctx.profile.recovery)
        if recipe.to_json() in tried:
            continue
        tried.add(recipe.to_json())
        size, macs = exact(ctx.wb, recipe)
        checks += 1
        if size <= limits.get("size_bytes", float("inf")) and macs <= limits.get("macs", float("inf")):
            chosen = [rows[x][trial[x]] for x in range(len(layers))]
            batch.append((trial, Candidate(recipe, start.kind, "refined", picks, predict(ctx, chosen), size, macs)))
        if len(batch) >= per_round or checks >= CHECKS_PER_TRADE * per_round:
            break
    return batch


def refine(
    ctx: Context, start: Candidate, start_result: dict, measure: Measure, rounds: int = 2, per_round: int = 3
) -> list[tuple[Candidate, dict]]:
    """Every candidate the search measured, with its result (the caller keeps the best)."""
    limits = resource_limits(ctx)
    if not limits or not start.picks or rounds < 1:
        return []
    prunable = {n for n, _ in prunable_layers(ctx.wb.model, skip=PRUNERS[start.kind].sensitivity_skip)}
    opts, rows = tables(ctx.profile, start.kind, prunable)
    layers = ctx.profile.layers
    choice = [opts[i].index(start.picks[n]) for i, n in enumerate(layers)]
    metric = start.source.split()[1] if start.source.startswith("allocation ") else "noise"
    metric = metric if metric in ("noise", "drop", "flip") else "noise"
    best_key = (start_result["accuracy"], start_result.get("agreement") or 0.0)
    tried: set[str] = set()
    out: list[tuple[Candidate, dict]] = []
    for _ in range(rounds):
        batch = _proposals(ctx, start, choice, (opts, rows), metric, limits, tried, per_round)
        if not batch:
            break
        results = measure([c.recipe for _, c in batch])
        out += [(c, r) for (_, c), r in zip(batch, results, strict=True)]
        keys = [(r["accuracy"], r.get("agreement") or 0.0) for r in results]
        top = max(range(len(batch)), key=lambda x: (keys[x], -x))
        if keys[top] <= best_key:
            break
        best_key, choice = keys[top], batch[top][0]
    return out
