"""The per-layer option table the allocation works on: for each prunable layer and each option
(sparsity in {0} + space.sparsities, bits in {32} + space.bits) its predicted accuracy cost and its exact
resources.

- **Accuracy cost** (measured, with the recipe's recovery). The cost of a compressed model is its output
  noise: the mean KL divergence of its softmax from the dense model's on the evaluation set. For small
  perturbations it is a quadratic form in the logit error, so it adds up over layers and grows linearly with
  each layer's squared weight error (the additive-noise model of Zhou et al. 2018, "Adaptive quantization
  for deep neural network", and of HAWQ's Hessian trace weighting). Each layer is pruned *alone* at
  ``PROFILE_SPARSITIES`` and quantized *alone* at each bit-width by a one-layer Recipe (``layer_sparsity``
  / ``layer_bits``) run through ``Workbench.compress`` (pruning, quantization, recovery), and its KL measured;
  an isotonic curve through those points (``Curve``) gives the layer's KL as a function of its squared
  weight error. Every option's cost is its curve at its exact squared weight error, so the fine option grid
  costs no extra measurements.
- **Bytes**: the layer's weight and bias records encoded exactly as the ``.psz`` writer does
  (``artifact.codec``) and raw-deflated on their own, taken from one uniform model per (kind, sparsity,
  bits) with every layer pruned to that sparsity on its own (``scope="layer"``); the rest of the file
  (header, BatchNorm, the cross-record deflate gain) is ``overhead_bytes``, from the real files.
- **MACs**: per layer, from forward hooks on the same uniform models.

Both kinds of rows are cached in a ``ResultStore`` of the solver's own (a file beside the results store,
so the Sweep and Compare pages never list them), keyed by the recipe that produced them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.records import Progress, span
from compress_core.bench.workbench import Workbench
from compress_core.engine import measure
from compress_core.engine.prune import PRUNERS
from compress_core.engine.prune.layers import prunable_layers
from compress_core.engine.recover import batchnorms
from compress_core.files.artifact.codec import encode_q, encode_raw
from compress_core.study.solver.budget import SearchSpace
from compress_core.study.solver.predict import isotonic
from compress_core.study.store import ResultStore

COLUMNS = ["layer", "kind", "sparsity", "bits", "noise", "drop", "flip", "weight_error", "size_bytes", "macs"]
PROFILE_VERSION = 3
PROFILE_SPARSITIES = (0.5, 0.8, 0.9, 0.95)  # where each layer is pruned alone (nearest in the space)


@dataclass
class Profile:
    model_id: str
    mode: str
    recovery: str
    dense_accuracy: float
    dense_size_bytes: int  # the dense model's artefact file
    dense_macs: int
    overhead_bytes: float  # file bytes outside every prunable layer's weight/bias records
    layers: list[str]
    table: pd.DataFrame  # COLUMNS: one row per (layer, kind, sparsity, bits)
    curves: dict[str, Curve]  # per layer: KL as a function of squared weight error
    points: list[dict]  # the one-layer measurements: layer, noise, accuracy_drop

    def options(self, kind: str, layer: str) -> pd.DataFrame:
        t = self.table
        return t[(t["kind"] == kind) & (t["layer"] == layer)].reset_index(drop=True)

    def noise_of(self, comp, dense: nn.Module) -> float:
        """Predicted output noise of a compressed model: the sum of each layer's curve at its weight error."""
        return sum(c(weight_error(comp, dense, n)) for n, c in self.curves.items())


def resolve_recovery(model: nn.Module, recovery: str) -> str:
    """``auto``: BatchNorm re-estimation where the model has BatchNorm, else none."""
    if recovery != "auto":
        return recovery
    return "bn" if batchnorms(model) else "none"


def profile_sparsities(space: SearchSpace) -> tuple[float, ...]:
    """The space's sparsities nearest to ``PROFILE_SPARSITIES`` (ties: the lower)."""
    picked = set()
    for t in PROFILE_SPARSITIES:
        gaps = [(abs(s - t), s) for s in space.sparsities]
        picked.add(min(gaps)[1])
    return tuple(sorted(picked))


def one_layer_recipes(wb: Workbench, space: SearchSpace, recovery: str) -> dict[tuple, Recipe]:
    """(kind or "quant", layer, value) -> the one-layer recipe measuring it."""
    out: dict[tuple, Recipe] = {}
    for kind in space.kinds:
        for name, _ in prunable_layers(wb.model, skip=PRUNERS[kind].sensitivity_skip):
            for s in profile_sparsities(space):
                p = PruneSpec(
                    kind=kind,
                    criterion=space.criterion,
                    scope="layer",
                    sparsity=0.0,
                    skip=(),
                    layer_sparsity=((name, s),),
                    seed=space.seed,
                )
                out[(kind, name, s)] = Recipe(prune=p, recovery=recovery)
    for name, _ in prunable_layers(wb.model, skip=()):
        for b in space.bits:
            out[("quant", name, b)] = Recipe(quant=QuantSpec(layer_bits=((name, b),)), recovery=recovery)
    return out


def logits(model: nn.Module, data, chunk: int = 500) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(data.x[i : i + chunk]) for i in range(0, len(data.x), chunk)])


def kl_noise(out: torch.Tensor, ref_logits: torch.Tensor) -> float:
    """Mean KL(dense || compressed) of the softmax outputs, in nats."""
    p = torch.log_softmax(ref_logits.double(), 1)
    q = torch.log_softmax(out.double(), 1)
    return float((p.exp() * (p - q)).sum(1).mean())


def _weight_of(model: nn.Module, name: str) -> torch.Tensor:
    weight = model.get_submodule(name).weight
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"layer {name!r} has no weight tensor")
    return weight.detach()


def weight_error(comp, dense: nn.Module, name: str) -> float:
    """Squared L2 distance of a layer's weight from the dense one. Structured pruning removed channels (the
    shapes differ): the energy of the removed weights, ``|dense|^2 - |kept|^2``."""
    w = _weight_of(comp.float_model, name)
    d = _weight_of(dense, name)
    if w.shape != d.shape:
        return abs(float(d.pow(2).sum() - w.pow(2).sum()))
    return float((w - d).pow(2).sum())


def _measure_one(wb: Workbench, recipe: Recipe, layer: str, data, ref: torch.Tensor, ref_logits) -> dict:
    comp = wb.compress(recipe)
    out = logits(comp.float_model, data)
    acc = measure.accuracy(out.argmax(1), data.y, ref)
    return {
        "accuracy": acc.accuracy,
        "agreement": acc.agreement,
        "dense_accuracy": measure.accuracy(ref, data.y).accuracy,
        "noise": kl_noise(out, ref_logits),
        "weight_error": weight_error(comp, wb.model, layer),
        "eval_samples": len(data),
        "profile_version": PROFILE_VERSION,
    }


def _cached(cache: ResultStore | None, model_id: str, recipe: Recipe, mode: str, compute) -> dict:
    row = cache.get(model_id, recipe.to_json(), mode, 1) if cache is not None else None
    if row is None or row.get("profile_version") != PROFILE_VERSION:
        row = compute()
        if cache is not None:
            cache.put(model_id, recipe.to_json(), mode, 1, row)
    return row


def measure_costs(
    wb: Workbench,
    space: SearchSpace,
    mode: str,
    recovery: str,
    cache: ResultStore | None,
    progress: Progress | None = None,
) -> dict[tuple, dict]:
    """Every one-layer recipe's measured accuracy, agreement, KL and weight error."""
    recipes = one_layer_recipes(wb, space, recovery)
    data = wb.eval_data(mode)
    ref, ref_logits = wb.dense_predictions(data), logits(wb.model, data)
    out: dict[tuple, dict] = {}
    for i, (key, recipe) in enumerate(recipes.items()):
        if progress is not None:
            what = f"{key[2]} bits" if key[0] == "quant" else f"{key[0]} {key[2]:.0%}"
            progress(i / len(recipes), f"profile: {key[1]} alone at {what}")
        out[key] = _cached(
            cache, wb.model_id, recipe, mode, lambda r=recipe, k=key: _measure_one(wb, r, k[1], data, ref, ref_logits)
        )
    return out


def _deflated(chunks: list[bytes]) -> int:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return len(c.compress(b"".join(chunks)) + c.flush())


def layer_bytes(comp, name: str) -> int:
    """Deflated bytes of one layer's weight and bias records, encoded as the artefact writer does."""
    state = comp.float_model.state_dict()
    chunks: list[bytes] = []
    w, q = state[f"{name}.weight"], comp.qcodes.get(name)
    if q is None or encode_q(f"{name}.weight", w, q, chunks) is None:
        encode_raw(f"{name}.weight", w, chunks, fp16=comp.recipe.quant.bits_of(name) == 16)
    if f"{name}.bias" in state:
        encode_raw(f"{name}.bias", state[f"{name}.bias"], chunks)
    return _deflated(chunks)


def layer_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-accumulates of each Conv2d/Linear layer for one sample (as ``measure.count_macs``)."""
    macs: dict[str, int] = {}

    def hook(name: str, per_output: int):
        return lambda _m, _i, o: macs.__setitem__(name, o.numel() * per_output)

    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            handles.append(m.register_forward_hook(hook(name, k)))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(hook(name, m.in_features)))
    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return macs


def uniform_option(kind: str, s: float, b: int, space: SearchSpace) -> Recipe:
    prune = (
        PruneSpec()
        if s == 0
        else PruneSpec(
            kind=kind,
            criterion=space.criterion,
            scope="layer",
            sparsity=s,
            skip=PRUNERS[kind].sensitivity_skip,
            seed=space.seed,
        )
    )
    return Recipe(prune=prune, quant=QuantSpec(bits=b))


def _resources(wb: Workbench, recipe: Recipe, layers: list[str]) -> dict:
    comp = wb.compress(recipe)
    per = {n: layer_bytes(comp, n) for n in layers}
    return {
        "layer_bytes": per,
        "layer_macs": layer_macs(comp.float_model, wb.spec.input_shape),
        "layer_weight_error": {n: weight_error(comp, wb.model, n) for n in layers},
        "overhead_bytes": wb.size_of(comp)[0] - sum(per.values()),
        "profile_version": PROFILE_VERSION,
    }


def resource_rows(
    wb: Workbench, space: SearchSpace, kind: str, cache: ResultStore | None, progress: Progress | None = None
) -> tuple[list[dict], float]:
    """Per-layer bytes, MACs and weight error of every (sparsity, bits) option of ``kind``; the file overhead."""
    rows: list[dict] = []
    overheads: list[float] = []
    layers = [n for n, _ in prunable_layers(wb.model, skip=())]
    grid = [(s, b) for s in (0.0, *space.sparsities) for b in (32, *space.bits)]
    for i, (s, b) in enumerate(grid):
        if progress is not None:
            progress(i / len(grid), f"profile: bytes and MACs, {kind} {s:.0%} at {b} bits")
        recipe = uniform_option(kind, s, b, space)
        res = _cached(cache, wb.model_id, recipe, "full", lambda r=recipe: _resources(wb, r, layers))
        overheads.append(float(res["overhead_bytes"]))
        rows += [
            {
                "layer": n,
                "kind": kind,
                "sparsity": s,
                "bits": b,
                "size_bytes": res["layer_bytes"][n],
                "macs": res["layer_macs"][n],
                "weight_error": res["layer_weight_error"][n],
            }
            for n in layers
        ]
    if kind == "structured":  # the removed energy only: add the quantization error of the kept weights
        qerr = {(r["layer"], r["bits"]): r["weight_error"] for r in rows if r["sparsity"] == 0}
        for r in rows:
            if r["sparsity"] > 0:
                r["weight_error"] += qerr[(r["layer"], r["bits"])] * (1 - r["sparsity"])
    return rows, float(np.median(overheads))


@dataclass
class Curve:
    """One layer's output noise (KL) as a non-decreasing function of its squared weight error: the
    isotonic fit through its one-layer measurements and the origin, linear between them, and beyond the
    last one along the line from the origin through it (KL grows at least linearly there)."""

    xs: list[float]
    ys: list[float]

    def __call__(self, e: float) -> float:
        if e <= self.xs[-1]:
            return float(np.interp(e, self.xs, self.ys))
        return self.ys[-1] * e / self.xs[-1] if self.xs[-1] > 0 else 0.0


METRICS = {  # cost column -> how to read it off a one-layer measurement
    "noise": lambda r: float(r["noise"]),  # KL from the dense outputs
    "drop": lambda r: float(r["dense_accuracy"]) - float(r["accuracy"]),  # accuracy drop
    "flip": lambda r: 1.0 - float(r["agreement"]),  # share of top-1 answers changed
}


def layer_curves(costs: dict[tuple, dict], metric: str = "noise") -> dict[str, Curve]:
    """Per layer: its ``Curve`` of ``metric`` over the one-layer measurements (pruned alone, quantized alone)."""
    read = METRICS[metric]
    pts: dict[str, list[tuple[float, float]]] = {}
    for (_, layer, _), row in costs.items():
        pts.setdefault(layer, [(0.0, 0.0)]).append((float(row["weight_error"]), max(0.0, read(row))))
    out = {}
    for layer, p in pts.items():
        xs, ys = isotonic([a for a, _ in p], [b for _, b in p])
        out[layer] = Curve(xs, ys)
    return out


def build_profile(
    wb: Workbench,
    space: SearchSpace,
    mode: str = "quick",
    cache: ResultStore | None = None,
    progress: Progress | None = None,
) -> Profile:
    """The option table of ``wb``'s model over ``space`` (see the module docstring)."""
    recovery = resolve_recovery(wb.model, space.recovery)
    costs = measure_costs(wb, space, mode, recovery, cache, span(progress, 0.0, 0.8))
    curves = {m: layer_curves(costs, m) for m in METRICS}
    rows, overheads = [], []
    for kind in space.kinds:
        kind_rows, overhead = resource_rows(wb, space, kind, cache, span(progress, 0.8, 1.0))
        rows += kind_rows
        overheads.append(overhead)
    for r in rows:
        for m, by_layer in curves.items():
            r[m] = by_layer[r["layer"]](r["weight_error"]) if r["layer"] in by_layer else 0.0
    data = wb.eval_data(mode)
    dense = wb.dense_facts()
    points = [
        {"layer": k[1], "noise": c["noise"], "accuracy_drop": c["dense_accuracy"] - c["accuracy"]}
        for k, c in costs.items()
    ]
    return Profile(
        model_id=wb.model_id,
        mode=mode,
        recovery=recovery,
        dense_accuracy=measure.accuracy(wb.dense_predictions(data), data.y).accuracy,
        dense_size_bytes=int(dense["artifact_bytes"]),
        dense_macs=int(dense["macs"]),
        overhead_bytes=max(overheads),
        layers=[n for n, _ in prunable_layers(wb.model, skip=())],
        table=pd.DataFrame(rows, columns=COLUMNS),
        curves=curves["noise"],
        points=points,
    )
