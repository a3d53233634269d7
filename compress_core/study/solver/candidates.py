"""From the option table to a few candidate recipes, each with the solver's predicted numbers.

``plan`` allocates (``allocate.allocate``) at the budget and at slightly tightened limits, turns each
choice into a Recipe (``layer_sparsity`` + ``layer_bits``), writes its artefact in memory to check the
file size exactly, and rescales the size limit by the real file's miss (over: tighter; well under: looser)
and allocates again, up to ``MAX_RETRIES`` times, keeping the largest file that fits. What it returns
meets the size and MAC limits by construction; accuracy and latency are predicted (``predict``) and
measured by ``solve``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.bench.workbench import Workbench
from compress_core.engine import measure
from compress_core.engine.prune import PRUNERS
from compress_core.engine.prune.layers import prunable_layers
from compress_core.study.solver.allocate import allocate
from compress_core.study.solver.budget import Budget, SearchSpace
from compress_core.study.solver.predict import LatencyModel, NoiseMap
from compress_core.study.solver.profile import Profile

# (cost column, fraction of the resource limits) of each allocation: the KL-optimal one at the limits and a
# little under them, and the ones that minimise the summed one-layer accuracy drop or changed answers
# (three proxies of the accuracy loss, each additive over layers only approximately: measured, best kept)
TARGETS = (("noise", 1.0), ("noise", 0.93), ("drop", 1.0), ("flip", 1.0))
FLOOR_SHARES = (1.0, 0.7, 0.45)  # accuracy floor alone: shares of the allowed noise the allocation spends
MAX_RETRIES = 4
CLOSE_ENOUGH = 0.985  # a file within 1.5 % under the size limit is not re-allocated


@dataclass
class Candidate:
    recipe: Recipe
    kind: str
    source: str  # "allocation x<factor>", "refined", "uniform"
    picks: dict[str, tuple[float, int]] = field(default_factory=dict)  # layer -> (sparsity, bits)
    predicted: dict = field(default_factory=dict)  # accuracy_drop, noise, size_bytes, macs, latency_ms_p50
    size_bytes: int = 0  # the artefact written in memory
    macs: int = 0


@dataclass
class Context:
    """What every allocation of one solve shares."""

    wb: Workbench
    profile: Profile
    budget: Budget
    space: SearchSpace
    noise_map: NoiseMap
    latency: LatencyModel


def recipe_of(kind: str, picks: dict[str, tuple[float, int]], space: SearchSpace, recovery: str) -> Recipe:
    """The one recipe expressing per-layer (sparsity, bits) picks: the commonest bit-width (ties: the
    wider) as ``bits``, the others in ``layer_bits``; every pruned layer in ``layer_sparsity``."""
    sparsity = tuple((n, s) for n, (s, _) in picks.items() if s > 0)
    counts = Counter(b for _, b in picks.values())
    default = max(counts, key=lambda b: (counts[b], b))
    layer_bits = tuple((n, b) for n, (_, b) in picks.items() if b != default)
    prune = (
        PruneSpec()
        if not sparsity
        else PruneSpec(
            kind=kind,
            criterion=space.criterion,
            scope="layer",
            sparsity=0.0,
            skip=(),
            layer_sparsity=sparsity,
            seed=space.seed,
        )
    )
    r = Recipe(prune=prune, quant=QuantSpec(bits=default, layer_bits=layer_bits))
    return r.with_recovery(recovery) if r.compressed else r


def tables(profile: Profile, kind: str, prunable: set[str]):
    """Per layer: its options [(sparsity, bits)] and their rows (noise, size_bytes, macs)."""
    opts, rows = [], []
    for layer in profile.layers:
        t = profile.options(kind, layer)
        t = t[(t["sparsity"] == 0) | t["layer"].isin(prunable)]
        t = t.sort_values(["sparsity", "bits"], ascending=[True, False], kind="stable")
        opts.append(list(zip(t["sparsity"].astype(float), t["bits"].astype(int), strict=True)))
        rows.append(
            [
                {"noise": float(n), "drop": float(d), "flip": float(f), "size_bytes": float(b), "macs": float(m)}
                for n, d, f, b, m in zip(t["noise"], t["drop"], t["flip"], t["size_bytes"], t["macs"], strict=True)
            ]
        )
    return opts, rows


def predict(ctx: Context, rows: list[dict]) -> dict:
    noise = sum(r["noise"] for r in rows)
    size = ctx.profile.overhead_bytes + sum(r["size_bytes"] for r in rows)
    macs = sum(r["macs"] for r in rows)
    return {
        "accuracy_drop": ctx.noise_map.drop(noise),
        "noise": noise,
        "size_bytes": round(size),
        "macs": int(macs),
        "latency_ms_p50": ctx.latency.predict(macs, ctx.profile.dense_macs),
    }


def resource_limits(ctx: Context) -> dict[str, float]:
    """Size and MAC limits for the allocation; a latency limit becomes a MAC limit via ``ctx.latency``."""
    limits = {k: v for k, v in ctx.budget.resources.items() if k in ("size_bytes", "macs")}
    if ctx.budget.max_latency_ms is not None:
        m = ctx.latency.macs_limit(ctx.budget.max_latency_ms, ctx.profile.dense_macs)
        if m is not None:
            limits["macs"] = min(limits.get("macs", m), m)
    return limits


def exact(wb: Workbench, recipe: Recipe) -> tuple[int, int]:
    """(artefact bytes, MACs) of ``recipe`` as it will be measured: with its recovery, which rewrites the
    BatchNorm statistics (and, reconstructing, the weights), so the deflated file changes by a few bytes."""
    comp = wb.compressed(recipe)
    return wb.size_of(comp)[0], measure.count_macs(comp.float_model, wb.spec.input_shape)


def plan(ctx: Context) -> list[Candidate]:
    """Distinct allocations that meet the size and MAC limits exactly, per kind and target."""
    limits = resource_limits(ctx)
    out: dict[str, Candidate] = {}
    for kind in ctx.space.kinds:
        prunable = {n for n, _ in prunable_layers(ctx.wb.model, skip=PRUNERS[kind].sensitivity_skip)}
        opts, rows = tables(ctx.profile, kind, prunable)
        if limits:  # the least predicted accuracy loss under the resource limits
            targets = [
                (f"{m} x{f:g}", [[r[m] for r in layer] for layer in rows], {k: v * f for k, v in limits.items()})
                for m, f in TARGETS
            ]
        else:  # an accuracy floor alone: the smallest file whose predicted noise fits
            objective = [[r["size_bytes"] for r in layer] for layer in rows]
            noise = ctx.noise_map.noise_for((ctx.budget.max_drop_pp or 0.0) / 100.0)
            targets = [(f"floor x{f:g}", objective, {"noise": noise * f}) for f in FLOOR_SHARES]
        for source, objective, target in targets:
            cand = fit(ctx, kind, opts, objective, rows, target, limits)
            if cand is not None and cand.recipe.to_json() not in out:
                cand.source = f"allocation {source}"
                out[cand.recipe.to_json()] = cand
    return list(out.values())


def fit(ctx: Context, kind: str, opts, objective, rows, target: dict, limits: dict) -> Candidate | None:
    """Allocate at ``target``; rescale the size target by the real file's miss; the largest fit wins."""
    fixed = {"size_bytes": ctx.profile.overhead_bytes}
    target, best = dict(target), None
    for _ in range(MAX_RETRIES + 1):
        choice = allocate(objective, rows, target, fixed)
        if choice is None:
            return best
        picks = {layer: opts[i][j] for i, (layer, j) in enumerate(zip(ctx.profile.layers, choice, strict=True))}
        recipe = recipe_of(kind, picks, ctx.space, ctx.profile.recovery)
        size, macs = exact(ctx.wb, recipe)
        ratio = {k: (size if k == "size_bytes" else macs) / lim for k, lim in limits.items()}
        if all(v <= 1.0 for v in ratio.values()):
            chosen = [rows[i][j] for i, j in enumerate(choice)]
            if best is None or size > best.size_bytes:
                best = Candidate(recipe, kind, "", picks, predict(ctx, chosen), size, macs)
            if ratio.get("size_bytes", 1.0) >= CLOSE_ENOUGH or "size_bytes" not in limits:
                return best
        if ratio.get("macs", 0.0) > 1.0:
            target["macs"] = target.get("macs", limits["macs"]) / ratio["macs"] * 0.997
        if "size_bytes" in ratio:
            target["size_bytes"] = target.get("size_bytes", limits["size_bytes"]) / ratio["size_bytes"] * 0.997
        elif ratio.get("macs", 0.0) <= 1.0:
            return best
    return best
