"""Per-layer sensitivity: how much accuracy each layer loses when it alone is pruned or quantized.

``layer_sensitivity`` prunes one layer at a time at several sparsities (all other layers dense),
``bit_sensitivity`` quantizes one layer at a time at several bit-widths, and
``ratios_from_sensitivity`` turns the first table into per-layer sparsities that stay within an
accuracy budget, ready for ``PruneSpec.layer_sparsity``. Accuracy drops are measured against the
dense model on the same evaluation set; the shared model is never changed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

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
    recipes = []
    for name, _ in layers:
        for s in sparsities:  # PruneSpec validates criterion and each fraction
            spec = PruneSpec(
                kind=kind, criterion=criterion, scope="layer", sparsity=0.0, layer_sparsity=((name, s),), skip=()
            )
            recipes.append(Recipe(prune=spec, recovery=recovery))
    rows = []
    for i, recipe in enumerate(recipes):
        name, s = recipe.prune.layer_sparsity[0]
        if progress is not None:
            progress(i / len(recipes), f"pruning {name} to {s:.0%}")
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
    rows, total, done = [], len(layers) * len(specs), 0
    for name, module in layers:
        original = module.weight.detach().clone()
        for spec in specs:
            if progress is not None:
                progress(done / total, f"quantizing {name} to {spec.bits} bits")
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
