"""Per-layer views of a dense model and its compressed version, as tidy DataFrames.

Pure functions over ``nn.Module`` (or ``pipeline.Compressed``): they read weights and never
change them. The dashboard turns these frames into figures with ``compress_core.present.plots``.

- ``layer_table``: one row per Conv2d/Linear layer with its weight shape, weight count,
  non-zero count and sparsity (measured against the dense layer, so removed channels count).
- ``weight_histogram``: weight-value histograms before/after on shared bins (long format).
- ``size_breakdown``: the file sizes that explain "I pruned it but it is not smaller".
- ``knob_summary`` / ``bottlenecks`` / ``speed_note``: what the sparsity knob did to this recipe
  (channels vs parameters vs MACs removed), layers left nearly empty, and why int8 or structured
  pruning did not speed a model up.
- ``slider_layers``: the layers the global sparsity still moves once per-layer ratios are set.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn

from compress_core.base.recipe import PruneSpec
from compress_core.base.records import size_is_estimate
from compress_core.engine.prune.layers import Prunable, prunable_layers
from compress_core.engine.prune.unstructured import PRUNABLE

LAYER_COLUMNS = [
    "layer",
    "type",
    "shape",
    "dense_shape",
    "params",
    "dense_params",
    "nonzero",
    "sparsity",
    "channels",
    "dense_channels",
]
SMALL_MACS = 5_000_000  # per sample: below this, per-op overheads outweigh int8 arithmetic at batch 1
HISTOGRAM_COLUMNS = ["model", "bin_left", "bin_right", "bin_center", "count"]
SIZE_COLUMNS = ["item", "size_bytes", "basis", "note"]
FP32_BYTES = 4


def _as_module(model: object) -> nn.Module:
    """Accept an ``nn.Module`` or a ``pipeline.Compressed`` (its pruned float model is inspected)."""
    if isinstance(model, nn.Module):
        return model
    float_model = getattr(model, "float_model", None)
    if isinstance(float_model, nn.Module):
        return float_model
    raise ValueError(f"expected an nn.Module or a Compressed result; got {type(model).__name__}")


def weight_layers(model: object) -> list[tuple[str, Prunable]]:
    """Conv2d and Linear layers that hold a weight tensor, in module order."""
    module = _as_module(model)
    return [
        (n, m)
        for n, m in module.named_modules()
        if isinstance(m, PRUNABLE) and isinstance(getattr(m, "weight", None), torch.Tensor)
    ]


def _type_label(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        return f"Conv2d {kh}×{kw}"
    return type(m).__name__


def _shape(t: torch.Tensor) -> str:
    return "×".join(str(d) for d in t.shape)


def layer_table(model: object, dense: nn.Module | None = None) -> pd.DataFrame:
    """One row per Conv2d/Linear layer of ``model`` (weights only; biases are not pruned).

    ``params`` counts the layer's weight tensor as it is now and ``nonzero`` its non-zero
    entries. With ``dense`` (the unpruned model), ``sparsity`` is ``1 - nonzero / dense_params``,
    so channels that structured pruning removed count as pruned; without it the layer is its
    own reference.
    """
    ref = dict(weight_layers(dense)) if dense is not None else {}
    rows = []
    for name, m in weight_layers(model):
        w = m.weight.detach()
        dense_w = ref[name].weight.detach() if name in ref else w
        nonzero = int(torch.count_nonzero(w))
        dense_params = int(dense_w.numel())
        rows.append(
            {
                "layer": name,
                "type": _type_label(m),
                "shape": _shape(w),
                "dense_shape": _shape(dense_w),
                "params": int(w.numel()),
                "dense_params": dense_params,
                "nonzero": nonzero,
                "sparsity": 1.0 - nonzero / dense_params if dense_params else 0.0,
                "channels": int(w.shape[0]),
                "dense_channels": int(dense_w.shape[0]),
            }
        )
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


def _weights(model: object, layer: str | None) -> torch.Tensor:
    layers = weight_layers(model)
    if layer is not None:
        layers = [(n, m) for n, m in layers if n == layer]
        if not layers:
            names = ", ".join(n for n, _ in weight_layers(model))
            raise ValueError(f"no Conv2d/Linear layer named {layer!r}; layers: {names}")
    if not layers:
        return torch.empty(0)
    return torch.cat([m.weight.detach().float().flatten() for _, m in layers])


def zero_counts(before: object, after: object, layer: str | None = None) -> dict[str, int]:
    """Exact zeros among the weights before and after (pruned weights are exact zeros)."""
    return {name: int((_weights(m, layer) == 0).sum()) for name, m in (("before", before), ("after", after))}


def weight_histogram(
    before: object, after: object, layer: str | None = None, bins: int = 60, drop_zeros: bool = True
) -> pd.DataFrame:
    """Histograms of weight values before and after compression on the same bins (long format).

    ``layer`` picks one Conv2d/Linear layer (default: all of them). With ``drop_zeros`` exact
    zeros are left out, because after pruning they form one spike that hides everything else;
    ``zero_counts`` reports them. Columns: model ("before"/"after"), bin_left, bin_right,
    bin_center, count.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1; got {bins}")
    values = {"before": _weights(before, layer), "after": _weights(after, layer)}
    if drop_zeros:
        values = {k: v[v != 0] for k, v in values.items()}
    both = torch.cat(list(values.values()))
    if both.numel() == 0:
        return pd.DataFrame(columns=HISTOGRAM_COLUMNS)
    low, high = float(both.min()), float(both.max())
    if high <= low:
        high = low + 1e-6
    edges = torch.linspace(low, high, bins + 1)
    rows = []
    for name, v in values.items():
        counts = torch.histc(v, bins=bins, min=low, max=high) if v.numel() else torch.zeros(bins)
        for i in range(bins):
            left, right = float(edges[i]), float(edges[i + 1])
            rows.append(
                {
                    "model": name,
                    "bin_left": left,
                    "bin_right": right,
                    "bin_center": (left + right) / 2,
                    "count": int(counts[i]),
                }
            )
    return pd.DataFrame(rows, columns=HISTOGRAM_COLUMNS)


def state_dict_size_bytes(model: object) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what saving a masked model really costs."""
    buf = io.BytesIO()
    torch.save(_as_module(model).state_dict(), buf)
    return len(buf.getvalue())


def size_breakdown(result: Mapping, masked_size_bytes: int, deploy: tuple[str, int] | None = None) -> pd.DataFrame:
    """The sizes that explain where bytes go, from a ``Result.to_dict()`` and the masked save size.

    Rows: dense fp32 file; the pruned model saved as-is (zeros still stored); the compressed
    artefact (``size_method`` says whether it is measured or estimated); with ``deploy`` = (runtime
    name, bytes), the deployable file of that runtime; and the fp32 bytes of the non-zero weights
    alone, i.e. what a structured model with as many weights would weigh.
    """
    size_method = str(result.get("size_method", ""))
    compressed_basis = "estimated" if size_is_estimate(size_method) else "measured"
    rows = [
        ("Dense fp32 (torch.save)", int(result["dense_size_bytes"]), "measured", "the original model file"),
        (
            "Pruned, saved as-is (torch.save)",
            int(masked_size_bytes),
            "measured",
            "zeros are still stored: masking alone does not shrink a file",
        ),
        ("Compressed file", int(result["size_bytes"]), compressed_basis, size_method),
        *(
            [(f"Deployable file ({deploy[0]})", int(deploy[1]), "measured", "the file that runtime loads and runs")]
            if deploy
            else []
        ),
        (
            "Non-zero weights as dense fp32",
            int(result["params_nonzero"]) * FP32_BYTES,
            "estimated",
            "params_nonzero × 4 bytes: a structured model with as many weights",
        ),
    ]
    return pd.DataFrame(rows, columns=SIZE_COLUMNS)


# -- what the knob did, in words ------------------------------------------------------------------
def _fraction_removed(now: float, dense: float) -> float:
    return 1.0 - now / dense if dense else 0.0


def knob_summary(table: pd.DataFrame, result: Mapping) -> dict[str, float]:
    """Channels, parameters and MACs removed by this recipe, as fractions of the dense model.

    ``table`` is ``layer_table(compressed, dense)``; channels count the output channels (or
    features) of every Conv2d/Linear layer but the classifier, whose outputs are the classes."""
    inner = table.iloc[:-1] if len(table) > 1 else table
    return {
        "channels": _fraction_removed(float(inner["channels"].sum()), float(inner["dense_channels"].sum())),
        "params": _fraction_removed(float(result["params_nonzero"]), float(result["dense_params"])),
        "macs": _fraction_removed(float(result["macs"]), float(result["dense_macs"])),
    }


def bottlenecks(table: pd.DataFrame, floor: float = 0.1) -> list[tuple[str, int, int]]:
    """(layer, channels left, dense channels) of layers that kept at most ``floor`` of their output
    channels, or a single one: a choke point that caps accuracy (the classifier is left out)."""
    inner = table.iloc[:-1] if len(table) > 1 else table
    thin = inner[
        (inner["dense_channels"] > 1)
        & ((inner["channels"] <= 1) | (inner["channels"] <= floor * inner["dense_channels"]))
    ]
    return [(str(r.layer), int(r.channels), int(r.dense_channels)) for r in thin.itertuples()]


def _fp32_islands(simulated: list[str]) -> int:
    for note in simulated:
        if m := re.search(r"(\d+) op\(s\) without int8 kernels", note):
            return int(m.group(1))
    return 0


def speed_note(result: Mapping) -> str | None:
    """Why this recipe is not (much) faster than dense, when it is int8 or structured and is not;
    None when it is faster, or when no speed-up was expected (masked zeros, simulated bits)."""
    ms, dense_ms = result.get("latency_ms_p50"), result.get("dense_latency_ms_p50")
    # the speed-up of the two medians it quotes (as every headline shows it), else the paired one
    speedup = dense_ms / ms if ms and dense_ms else result.get("speedup")
    kernels = str(result.get("latency_kernels") or "")
    if speedup is None or not math.isfinite(speedup) or speedup >= 1.1:
        return None
    macs, dense_macs = int(result["macs"]), int(result["dense_macs"])
    timed = f" ({ms:.3g} vs {dense_ms:.3g} ms dense)" if ms and dense_ms else ""
    if kernels.startswith("int8"):
        islands = _fp32_islands(list(result.get("simulated") or []))
        why = [
            f"int8 ran {1 / speedup:.2f}× slower than fp32{timed}"
            if speedup < 1
            else f"int8 ran only {speedup:.2f}× faster than fp32{timed}"
        ]
        if macs < SMALL_MACS:
            why.append(
                f"at batch {result.get('latency_batch', 1)} a model this small ({macs / 1e6:.2f} M MACs) "
                "spends more time quantizing, dequantizing and dispatching than int8 arithmetic saves"
            )
        else:
            why.append(
                "each int8 op pays a fixed cost (quantize, dequantize, re-layout) that thin layers "
                f"({macs / 1e6:.1f} M MACs in all) do not earn back at batch {result.get('latency_batch', 1)}"
            )
        if islands:
            why.append(f"{islands} op(s) without int8 kernels force a dequantize → fp32 → quantize round trip")
        return "; ".join(why) + ". int8 pays off on wide layers and large batches."
    if macs < 0.9 * dense_macs:
        return (
            f"Structured pruning removed {_fraction_removed(macs, dense_macs):.0%} of the MACs but ran only "
            f"{speedup:.2f}× as fast{timed}: at batch {result.get('latency_batch', 1)} the layers are so small "
            "that per-layer overheads (dispatch, memory traffic, index ops on pruned residual streams) and "
            "not arithmetic set the time."
        )
    return None


def slider_layers(model: nn.Module, spec: PruneSpec) -> list[str]:
    """Prunable layers the global sparsity moves: not skipped and without a per-layer ratio."""
    fixed = {name for name, _ in spec.layer_sparsity}
    return [n for n, _ in prunable_layers(model, spec.skip) if n not in fixed]
