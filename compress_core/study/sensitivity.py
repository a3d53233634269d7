"""Per-layer sensitivity: how much accuracy each layer loses when it alone is pruned or quantized.

``layer_sensitivity`` prunes one layer at a time at several sparsities (all other layers dense),
``bit_sensitivity`` quantizes one layer at a time at several bit-widths, and
``ratios_from_sensitivity`` turns the first table into per-layer sparsities that stay within an
accuracy budget, ready for ``PruneSpec.layer_sparsity``. ``estimate_duration`` says how long an
analysis will take before it starts: it times one layer's evaluation and multiplies; while an
analysis runs, its progress messages carry the time left, from the evaluations done so far.
Accuracy drops are measured against the dense model on the same evaluation set; the shared model is
never changed.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.records import Progress
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.engine import measure
from compress_core.engine.prune import PRUNERS
from compress_core.engine.prune.layers import Prunable, prunable_layers
from compress_core.engine.quantize import quantize_weights_

# Accuracies are fractions of n samples, so drops are multiples of 1/n up to float rounding
# (0.983 - 0.973 = 0.01000000000000001): compare with this slack.
_TOLERANCE = 1e-9


def _layers_for(wb: Workbench, kind: str) -> list[tuple[str, Prunable]]:
    """The layers a one-at-a-time analysis of this prune kind visits (its pruner says which to leave out)."""
    if kind not in PRUNERS:
        raise ValueError(f"sensitivity kind must be one of {', '.join(PRUNERS)}; got {kind!r}")
    return prunable_layers(wb.model, skip=PRUNERS[kind].sensitivity_skip)


def duration_text(seconds: float) -> str:
    """ "8 s", "2 min 10 s", "1 h 05 min": a duration as a person reads it."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass(frozen=True)
class DurationEstimate:
    """How long an analysis will take: ``evaluations`` × the measured ``seconds_each`` (one layer timed)."""

    layers: int
    values: int  # sparsities or bit-widths tested per layer
    seconds_each: float
    timed_layer: str

    @property
    def evaluations(self) -> int:
        return self.layers * self.values

    @property
    def total_s(self) -> float:
        return self.evaluations * self.seconds_each

    def text(self) -> str:
        return (
            f"about {duration_text(self.total_s)}: {self.layers} layers × {self.values} values = "
            f"{self.evaluations} evaluations at {self.seconds_each:.2g} s each (timed on {self.timed_layer})"
        )


class _Eta:
    """Progress messages with the time left, from the mean time of the evaluations done so far."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.start = progress, total, time.perf_counter()

    def __call__(self, done: int, message: str) -> None:
        if self.progress is None:
            return
        if done:
            elapsed = time.perf_counter() - self.start
            left = elapsed / done * (self.total - done)
            message += f" · {done}/{self.total} done, about {duration_text(left)} left"
        self.progress(done / self.total, message)


def _layer_recipe(kind: str, criterion: str, name: str, s: float, recovery: str) -> Recipe:
    spec = PruneSpec(kind=kind, criterion=criterion, scope="layer", sparsity=0.0, layer_sparsity=((name, s),), skip=())
    return Recipe(prune=spec, recovery=recovery)


def estimate_duration(
    wb: Workbench,
    analysis: str = "sparsity",
    sparsities: Sequence[float] = (0.25, 0.5, 0.75, 0.9),
    bits: Sequence[int] = (8, 4, 2, 1),
    criterion: str = "l1",
    kind: str = "unstructured",
    mode: str = "quick",
    recovery: str = "none",
) -> DurationEstimate:
    """Time one layer's evaluation exactly as the analysis runs it, and multiply by the evaluations to come.

    The pruning analysis evaluates its largest layer at its largest sparsity to warm up, then times the same
    layer at its smallest one (both results stay in the Workbench's cache, so the analysis does not pay for
    them twice); the quantization analysis quantizes its largest layer on a private copy. The dense
    predictions are computed first, outside the timing: the analysis has them too."""
    if analysis not in ("sparsity", "bits"):
        raise ValueError(f"analysis must be 'sparsity' or 'bits'; got {analysis!r}")
    data = wb.eval_data(mode)
    wb.dense_predictions(data)
    if analysis == "sparsity":
        values = _check_values("sparsities", sparsities)
        by_size = sorted(_layers_for(wb, kind), key=lambda nm: -nm[1].weight.numel())
        first, settings = by_size[0][0], MeasureSettings(mode, latency=False)
        # The first evaluation also pays one-time costs (importance sorts, calibration images): it warms up,
        # and the second one, of the same layer at another value (or the next layer), is timed.
        wb.evaluate(_layer_recipe(kind, criterion, first, max(values), recovery), settings)
        name = first if len(values) > 1 or len(by_size) == 1 else by_size[1][0]
        recipe = _layer_recipe(kind, criterion, name, min(values) if name == first else max(values), recovery)
        start = time.perf_counter()
        wb.evaluate(recipe, settings)
    else:
        values = [QuantSpec(bits=b) for b in _check_values("bits", bits)]
        work = copy.deepcopy(wb.model).eval()
        name, module = max(prunable_layers(work, skip=()), key=lambda nm: nm[1].weight.numel())
        start = time.perf_counter()
        quantize_weights_([(name, module)], values[-1])
        measure.predictions(work, data)
    seconds = time.perf_counter() - start
    layers = len(_layers_for(wb, kind)) if analysis == "sparsity" else len(prunable_layers(wb.model, skip=()))
    return DurationEstimate(layers, len(values), seconds, name)


def _check_values(name: str, values: Sequence) -> list:
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty list; got {values!r}")
    return list(values)


def layer_sensitivity(
    wb: Workbench,
    sparsities: Sequence[float] = (0.25, 0.5, 0.75, 0.9),
    criterion: str = "l1",
    kind: str = "unstructured",
    mode: str = "quick",
    progress: Progress | None = None,
    recovery: str = "none",
) -> pd.DataFrame:
    """Accuracy with each layer pruned alone at each sparsity (after ``recovery``, if any).

    Columns: layer, params (weights in the layer), sparsity, accuracy, accuracy_drop (dense minus
    pruned, on the same eval set), agreement (top-1 agreement with the dense model).
    """
    sparsities = _check_values("sparsities", sparsities)
    layers = _layers_for(wb, kind)
    wb.eval_data(mode)  # a bad mode fails here, before any work
    # PruneSpec validates criterion and each fraction
    recipes = [_layer_recipe(kind, criterion, name, s, recovery) for name, _ in layers for s in sparsities]
    rows, eta = [], _Eta(progress, len(recipes))
    for i, recipe in enumerate(recipes):
        name, s = recipe.prune.layer_sparsity[0]
        eta(i, f"pruning {name} to {s:.0%}")
        res = wb.evaluate(recipe, MeasureSettings(mode, latency=False))
        module = dict(layers)[name]
        rows.append(
            {
                "layer": name,
                "params": module.weight.numel(),
                "sparsity": s,
                "accuracy": res.accuracy,
                "accuracy_drop": res.dense_accuracy - res.accuracy,
                "agreement": res.agreement,
            }
        )
    if progress is not None:
        progress(1.0, "done")
    return pd.DataFrame(rows, columns=["layer", "params", "sparsity", "accuracy", "accuracy_drop", "agreement"])


def bit_sensitivity(
    wb: Workbench, bits: Sequence[int] = (8, 4, 2, 1), mode: str = "quick", progress: Progress | None = None
) -> pd.DataFrame:
    """Accuracy with each layer's weights alone quantized (symmetric, per channel) at each bit-width.

    Columns: layer, params, bits, accuracy, accuracy_drop, agreement. Works on one private deep
    copy of the model, restoring each layer's weight after measuring it.
    """
    specs = [QuantSpec(bits=b) for b in _check_values("bits", bits)]  # validates each bit-width
    data = wb.eval_data(mode)
    reference = wb.dense_predictions(data)
    dense_acc = measure.accuracy(reference, data.y).accuracy
    work = copy.deepcopy(wb.model).eval()
    layers = prunable_layers(work, skip=())
    rows, done, eta = [], 0, _Eta(progress, len(layers) * len(specs))
    for name, module in layers:
        original = module.weight.detach().clone()
        for spec in specs:
            eta(done, f"quantizing {name} to {spec.bits} bits")
            quantize_weights_([(name, module)], spec)
            acc = measure.accuracy(measure.predictions(work, data), data.y, reference)
            with torch.no_grad():
                module.weight.copy_(original)
            rows.append(
                {
                    "layer": name,
                    "params": original.numel(),
                    "bits": spec.bits,
                    "accuracy": acc.accuracy,
                    "accuracy_drop": dense_acc - acc.accuracy,
                    "agreement": acc.agreement,
                }
            )
            done += 1
    if progress is not None:
        progress(1.0, "done")
    return pd.DataFrame(rows, columns=["layer", "params", "bits", "accuracy", "accuracy_drop", "agreement"])


def ratios_from_sensitivity(df: pd.DataFrame, max_drop: float = 0.01) -> dict[str, float]:
    """For each layer, the largest tested sparsity whose accuracy_drop <= max_drop (0.0 if none).

    The result, as ``tuple(sorted(d.items()))``, is a ``PruneSpec.layer_sparsity``; it names every
    layer measured, including the first and last, so use it with ``skip=()`` or drop the skipped
    layers first. Layers keep the order in which they appear in ``df``.
    """
    missing = {"layer", "sparsity", "accuracy_drop"} - set(df.columns)
    if missing:
        raise ValueError(
            f"a sensitivity table needs column(s) {', '.join(sorted(missing))} "
            f"(from layer_sensitivity); got {', '.join(map(str, df.columns))}"
        )
    if (
        isinstance(max_drop, bool)
        or not isinstance(max_drop, (int, float))
        or not math.isfinite(max_drop)
        or max_drop < 0
    ):
        raise ValueError(f"max_drop must be a non-negative fraction of accuracy (0.01 = 1 point); got {max_drop!r}")
    ratios: dict[str, float] = {}
    for layer, group in df.groupby("layer", sort=False):
        ok = group.loc[group["accuracy_drop"] <= max_drop + _TOLERANCE, "sparsity"]
        ratios[str(layer)] = float(ok.max()) if len(ok) else 0.0
    return ratios
