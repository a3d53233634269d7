"""Layer-wise reconstruction of a compressed model against its dense original.

Every Conv2d/Linear that was pruned, quantized or otherwise changed, and every one after the first of
those in forward order (their inputs changed), is re-fitted in forward order by least squares:
its new weights minimise ``||X W^T - Y||^2`` where ``X`` is what the *compressed* model, with all
layers before it already re-fitted, feeds it and ``Y`` is what the dense layer outputs on the same
calibration images (``stats``). This is the sequential, asymmetric form of layer-wise reconstruction
(He et al. 2017; ThiNet, Luo et al. 2017; OBC's and GPTQ's sequential mode): errors made upstream are
compensated downstream instead of being reproduced. One paused forward pass per model collects it all
(``stepper``). Per layer, by how it was compressed (``solve``):

- pruned weights (keep-mask): exact per-row least squares on the kept weights, the mask's zeros fixed;
- removed channels (structured): the dense output channels it kept are found (``channels``), then the
  layer is re-fitted on its remaining input channels to those channels' dense outputs;
- k-bit weights: the float re-fit, then GPTQ's error-feedback rounding onto the grid of the same scheme
  (``grid``; SparseGPT's joint form when a mask is also given), with new codes in ``qcodes``; each layer
  on its own bit-width (``QuantSpec.bits_of``: per-layer bits from ``layer_bits``);
- fp16 weights: the float re-fit rounded to fp16;
- a layer with a bias gets it re-fitted; one without a bias but followed by a BatchNorm gets the same
  correction folded into that BatchNorm's running mean (bias correction, Nagel et al. 2019).

A re-fit whose output error on the calibration data is not lower than before is discarded, and the
report says so. BatchNorm statistics are not re-estimated afterwards unless a layer could not be
re-fitted (see ``recover_``): the bias terms already zero each layer's mean output error, and new
variances would scale the least-squares outputs away from the dense ones.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from compress_core.base.recipe import QuantSpec
from compress_core.engine.prune.layers import Prunable
from compress_core.engine.quantize import QTensor
from compress_core.engine.recover import channels as ch
from compress_core.engine.recover import solve
from compress_core.engine.recover.grid import Grid
from compress_core.engine.recover.stats import LayerStats, collect, groups_of
from compress_core.engine.recover.stepper import Stepper

MAX_ROWS = 16_384  # rows (output positions x images) per layer; beyond, a seeded random subset
CLIP_SEARCH = True  # choose the k-bit range per channel by output error (see grid)
PRUNABLE = (nn.Conv2d, nn.Linear)


@dataclass
class Target:
    """One layer to re-fit and what was done to it."""

    name: str
    layer: Prunable
    dense: Prunable
    keep: torch.Tensor | None = None  # keep-mask (weight's shape)
    grid: QuantSpec | None = None  # k-bit spec when the layer has integer codes
    fp16: bool = False
    channels: torch.Tensor | None = None  # structured: dense output channels kept (None: all)
    matched: str = ""  # how the channels were found ("" when not structured)
    bn: _BatchNorm | None = None  # BatchNorm consuming the output (takes the bias if the layer has none)

    @property
    def structured(self) -> bool:
        return self.layer.weight.shape != self.dense.weight.shape

    def method(self) -> str:
        parts = ["masked least squares" if self.keep is not None else "least squares"]
        if self.grid is not None:
            parts.append(f"GPTQ {self.grid.bits}-bit")
        if self.fp16:
            parts.append("fp16 rounding")
        return " + ".join(parts)


def _layers(model: nn.Module) -> dict[str, Prunable]:
    return {n: m for n, m in model.named_modules() if isinstance(m, PRUNABLE)}


def _batchnorms(model: nn.Module) -> dict[str, _BatchNorm]:
    return {n: m for n, m in model.named_modules() if isinstance(m, _BatchNorm)}


def _mask(
    name: str, layer: Prunable, dense: Prunable, masks: dict | None, quantized: bool
) -> tuple[torch.Tensor | None, bool]:
    """The layer's keep-mask, and whether it was inferred: without one, zeros of a float layer where the
    dense layer has none count as pruned (never for quantized layers, whose grid has zeros of its own)."""
    if masks and name in masks:
        keep = masks[name].bool()
        if keep.shape != layer.weight.shape:
            raise ValueError(
                f"the keep-mask of layer {name} has shape {tuple(keep.shape)} but its weight has "
                f"{tuple(layer.weight.shape)}"
            )
        return keep, False
    if quantized or layer.weight.shape != dense.weight.shape:
        return None, False
    zeros = (layer.weight == 0) & (dense.weight != 0)
    if not bool(zeros.any()):
        return None, False
    return layer.weight.detach() != 0, True


def _layer_spec(quant: QuantSpec | None, name: str) -> QuantSpec | None:
    """The spec ``name`` was quantized with: per-layer bits (``QuantSpec.layer_bits``) as its own bit-width."""
    if quant is None or not quant.layer_bits:
        return quant
    return replace(quant, bits=quant.bits_of(name), layer_bits=())


def _target(
    name: str,
    layer: Prunable,
    dense: Prunable,
    masks: dict | None,
    qcodes: dict | None,
    quant: QuantSpec | None,
    links: dict[str, str],
    bns: tuple[dict[str, _BatchNorm], dict[str, _BatchNorm]],
    notes: list[str],
) -> Target:
    spec = _layer_spec(quant, name)
    kbit = spec is not None and not spec.int8 and spec.bits <= 8 and qcodes is not None and name in qcodes
    if kbit and spec is not None and spec.scheme == "kmeans":
        raise ValueError(
            f"layer-wise reconstruction keeps weights on a uniform k-bit grid; layer {name} shares k-means "
            f"values at {spec.bits} bits, which have none: use recovery 'bn'"
        )
    fp16 = spec is not None and not spec.int8 and spec.bits == 16
    keep, inferred = _mask(name, layer, dense, masks, kbit or fp16)
    if inferred:
        notes.append(f"{name}: no keep-mask given; its zeros where the dense layer has none are kept as pruned")
    bn_name = links.get(name)
    t = Target(name, layer, dense, keep, spec if kbit else None, fp16, bn=bns[0].get(bn_name) if bn_name else None)
    if t.structured:
        t.channels, t.matched = ch.kept_outputs(layer, dense, t.bn, bns[1].get(bn_name) if bn_name else None)
    return t


def _changed(t: Target) -> bool:
    return (
        t.structured
        or t.keep is not None
        or t.grid is not None
        or t.fp16
        or not torch.equal(t.layer.weight, t.dense.weight)
    )


def _current(t: Target, with_bias: bool) -> torch.Tensor:
    """The layer's weights as (groups, out/groups, features [+ bias]) float64."""
    w = t.layer.weight.detach().double()
    g = groups_of(t.layer)
    W = w.reshape(g, w.shape[0] // g, -1)
    if with_bias:
        b = t.layer.bias.detach().double() if t.layer.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        W = torch.cat([W, b.view(g, -1, 1)], 2)
    return W


def _solve(t: Target, stats: LayerStats, with_bias: bool) -> tuple[torch.Tensor, QTensor | None]:
    """New (groups, out/groups, features [+ bias]) weights, and their QTensor for k-bit layers."""
    g, out_g, d = stats.G.shape
    dw = d - int(with_bias)
    keep = None
    if t.keep is not None:
        keep = t.keep.reshape(g, out_g, dw)
        if with_bias:
            keep = torch.cat([keep, torch.ones(g, out_g, 1, dtype=torch.bool)], 2)
    W = torch.stack(
        [
            solve.unconstrained(stats.H[i], stats.G[i])
            if keep is None
            else solve.masked(stats.H[i], stats.G[i], keep[i])
            for i in range(g)
        ]
    )
    if t.fp16:
        W[..., :dw] = W[..., :dw].float().half().double()
    if t.grid is None:
        return W, None
    shape = t.layer.weight.shape
    Hw = stats.H[:, :dw, :dw]
    grid = Grid.fit(W[..., :dw].reshape(shape), t.grid, Hw[0] if g == 1 else Hw, clip=CLIP_SEARCH)
    free = torch.zeros(d, dtype=torch.bool)
    free[dw:] = True
    for i in range(g):
        rows = slice(i * out_g, (i + 1) * out_g)
        kg = keep[i] if keep is not None else None

        def project(cols: torch.Tensor, idx: torch.Tensor, rows=rows, kg=kg) -> torch.Tensor:
            return grid.project(cols, None if kg is None else kg[:, idx], rows)

        W[i] = solve.sweep(W[i], stats.H[i], project, free)
    qt = grid.qtensor(W[..., :dw].reshape(shape), t.keep)
    W[..., :dw] = qt.dequantize().double().reshape(g, out_g, dw)
    return W, qt


def _write(t: Target, W: torch.Tensor, with_bias: bool) -> None:
    layer = t.layer
    dw = W.shape[2] - int(with_bias)
    with torch.no_grad():
        layer.weight.copy_(W[..., :dw].reshape(layer.weight.shape).to(layer.weight.dtype))
        if not with_bias:
            return
        b = W[..., dw].reshape(-1)
        if layer.bias is not None:
            layer.bias.copy_(b.to(layer.bias.dtype))
        else:  # BN(y + b) with mean m is BN(y) with mean m - b; fit_layer fits a bias here only where it has one
            mean = cast(torch.Tensor, getattr(t.bn, "running_mean", None))
            mean.sub_(b.to(mean.dtype))


def fit_layer(
    t: Target, inputs: list[torch.Tensor], outputs: list[torch.Tensor], qcodes: dict | None, seed: int
) -> dict:
    """Re-fit one layer in place from its compressed inputs and the dense outputs; a report row."""
    row: dict[str, Any] = {"name": t.name, "method": t.method(), "channels": t.matched or None}
    if t.structured and t.channels is None:
        return {**row, "kept": "previous", "unfitted": True, "note": f"output channels {t.matched}: left as it was"}
    with_bias = t.layer.bias is not None or (t.bn is not None and getattr(t.bn, "running_mean", None) is not None)
    per_batch = None if MAX_ROWS is None else math.ceil(MAX_ROWS / len(inputs))
    stats = collect(t.layer, inputs, outputs, with_bias, t.channels, per_batch, seed)
    W0 = _current(t, with_bias)
    before = stats.relative_error(W0)
    W, qt = _solve(t, stats, with_bias)
    after = stats.relative_error(W)
    row.update(rows=stats.rows, features=stats.H.shape[1], error_before=before, error_after=after)
    if not after < before:
        return {**row, "kept": "previous", "note": "the re-fit did not lower the output error: previous weights kept"}
    _write(t, W, with_bias)
    if qt is not None and qcodes is not None:
        qcodes[t.name] = qt
    return {**row, "kept": "new"}


@dataclass
class Reconstruction:
    """Per-layer report rows, notes, and both models' outputs on the calibration batches afterwards."""

    rows: list[dict]
    notes: list[str]
    outputs: list[torch.Tensor | None]
    dense_outputs: list[torch.Tensor | None]


def reconstruct_(
    model: nn.Module,
    dense: nn.Module,
    images: list[torch.Tensor],
    masks: dict | None,
    qcodes: dict | None,
    quant: QuantSpec | None,
    seed: int,
) -> Reconstruction:
    """Re-fit ``model``'s layers in forward order (module docstring)."""
    ref = copy.deepcopy(dense).eval()  # hooks and the paused pass run on a copy: ``dense`` is never touched
    model.eval()
    layers, dense_layers = _layers(model), _layers(ref)
    unknown = sorted(set(layers) - set(dense_layers))
    if unknown:
        raise ValueError(f"the compressed model has layer(s) the dense model lacks: {', '.join(unknown)}")
    links = ch.bn_after(model, images[0][:1])
    bns = (_batchnorms(model), _batchnorms(ref))  # what ``links`` names
    names = list(layers)
    rows: list[dict] = []
    notes: list[str] = []
    seen: set[str] = set()
    started = False
    with Stepper(model, images, names, "pre") as comp, Stepper(ref, images, names, "post") as den:
        while (stops := comp.advance()) is not None:
            dstops = den.advance()
            name = stops[0].name
            if dstops is None or dstops[0].name != name:
                raise ValueError(
                    "the compressed and dense models call their layers in different orders; "
                    "layer-wise reconstruction needs the same architecture"
                )
            if name in seen:
                notes.append(f"{name} runs more than once per forward pass: fitted on its first call only")
                continue
            seen.add(name)
            t = _target(name, layers[name], dense_layers[name], masks, qcodes, quant, links, bns, notes)
            started = started or _changed(t)
            if started:
                dense_out = [cast(torch.Tensor, s.y) for s in dstops]  # a "post" Stepper parks with the output
                rows.append(fit_layer(t, [s.x for s in stops], dense_out, qcodes, seed + len(rows)))
        return Reconstruction(rows, notes, comp.outputs, den.finish())
