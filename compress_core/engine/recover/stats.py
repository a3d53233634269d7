"""Second-order statistics of one layer for least-squares reconstruction.

A Conv2d or Linear computes ``Y = X W^T (+ b)`` once its input is written as rows of features: for a
convolution each output position is one row holding the ``C_in/groups * kh * kw`` input values under
the kernel (``F.unfold``, the im2col of Chellapilla et al. 2006), per group. ``LayerStats`` accumulates,
per group and in float64,

- ``H = X^T X``: the Hessian of the squared output error (OBS/OBC, Hassibi & Stork 1993; Frantar &
  Alistarh 2022), from the inputs the *compressed* model feeds the layer;
- ``G = Y^T X``: the cross-moment with the *dense* model's outputs of the same layer on the same
  images (the asymmetric target of He et al. 2017 and ThiNet, Luo et al. 2017: upstream errors are
  compensated, not reproduced);
- ``yy``: the squared norm of the dense outputs per output channel,

so that the output error of any weights ``W`` is ``tr(W H W^T) - 2 tr(W G^T) + sum(yy)`` without
keeping the activations. With ``bias=True`` a constant feature 1 is appended (the last column): the
fitted bias zeroes the mean output error on the data (the empirical bias correction of Nagel et al.
2019, done jointly with the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compress_core.engine.prune.layers import Prunable


def groups_of(layer: nn.Module) -> int:
    return layer.groups if isinstance(layer, nn.Conv2d) else 1


def _padded(layer: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The input with the layer's padding applied (any padding mode), and the padding left to unfold."""
    if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        return F.pad(x, layer._reversed_padding_repeated_twice, mode=mode), (0, 0)
    return x, layer.padding


def features(layer: Prunable, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """The layer's input as (groups, rows, features per group); ``rows`` picks output positions
    (flat indices over images x positions) without unfolding the others."""
    x = x.detach().float()
    if isinstance(layer, nn.Linear):
        flat = x.reshape(-1, x.shape[-1])
        return (flat if rows is None else flat.index_select(0, rows)).unsqueeze(0)
    x, padding = _padded(layer, x)
    g = layer.groups
    if rows is None:
        cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=padding, stride=layer.stride)
        n, d, positions = cols.shape
        return cols.view(n, g, d // g, positions).permute(1, 0, 3, 2).reshape(g, n * positions, d // g)
    patches = _patches(layer, F.pad(x, (padding[1], padding[1], padding[0], padding[0])), rows)
    r, c = patches.shape[:2]
    return patches.reshape(r, g, (c // g) * patches.shape[2] * patches.shape[3]).transpose(0, 1)


def _patches(layer: nn.Conv2d, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(rows, C, kh, kw) input patches under the kernel at the chosen output positions of padded ``x``."""
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    ho = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    n, pos = rows // (ho * wo), rows % (ho * wo)
    top = (pos // wo) * sh * x.shape[3] + (pos % wo) * sw  # offset of each patch's corner in an image plane
    kernel = (torch.arange(kh) * dh * x.shape[3]).view(-1, 1) + torch.arange(kw) * dw  # (kh, kw) offsets
    plane = x.shape[2] * x.shape[3]
    chan = torch.arange(x.shape[1]) * plane
    base = n * (x.shape[1] * plane) + top  # (rows,)
    idx = base.view(-1, 1, 1, 1) + chan.view(1, -1, 1, 1) + kernel.view(1, 1, kh, kw)
    return x.reshape(-1).take(idx)


def _n_rows(y: torch.Tensor) -> int:
    """Output positions x images: the rows a layer output gives."""
    return y.numel() // (y.shape[1] if y.dim() == 4 else y.shape[-1])


def targets(y: torch.Tensor, groups: int, channels: torch.Tensor | None = None) -> torch.Tensor:
    """Layer outputs as (groups, rows, channels per group), keeping only ``channels`` if given. Conv
    outputs (N, C, H, W) give rows in the order of ``features``; Linear outputs keep features last."""
    y = y.detach().float()
    if y.dim() == 4:
        y = y.movedim(1, -1)
    y = y.reshape(-1, y.shape[-1])
    if channels is not None:
        y = y.index_select(1, channels)
    return y.view(-1, groups, y.shape[1] // groups).transpose(0, 1)


def _rows(n: int, limit: int | None, gen: torch.Generator) -> torch.Tensor | None:
    if limit is None or n <= limit:
        return None
    return torch.randperm(n, generator=gen)[:limit].sort().values


@dataclass
class LayerStats:
    """Running ``H``, ``G`` and ``yy`` of one layer (see the module docstring)."""

    H: torch.Tensor  # (g, d, d) float64
    G: torch.Tensor  # (g, out/g, d) float64
    yy: torch.Tensor  # (g, out/g) float64
    rows: int = 0

    @classmethod
    def empty(cls, groups: int, out_per_group: int, d: int) -> LayerStats:
        f64 = torch.float64
        return cls(
            torch.zeros(groups, d, d, dtype=f64),
            torch.zeros(groups, out_per_group, d, dtype=f64),
            torch.zeros(groups, out_per_group, dtype=f64),
        )

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add rows: ``x`` (g, rows, d) compressed inputs (with the 1-column if any), ``y`` (g, rows, out/g)."""
        self.H += torch.bmm(x.transpose(1, 2), x).double()
        self.G += torch.bmm(y.transpose(1, 2), x).double()
        self.yy += y.double().square().sum(1)
        self.rows += x.shape[1]

    def error(self, W: torch.Tensor) -> torch.Tensor:
        """Squared output error per output channel (g, out/g) of weights ``W`` (g, out/g, d)."""
        W = W.double()
        quad = (torch.bmm(W, self.H) * W).sum(-1)
        return (quad - 2 * (W * self.G).sum(-1) + self.yy).clamp(min=0)

    def relative_error(self, W: torch.Tensor) -> float:
        """Output error of ``W`` relative to the dense outputs' energy: ||XW^T - Y||^2 / ||Y||^2."""
        return float(self.error(W).sum() / self.yy.sum().clamp(min=1e-30))


def collect(
    layer: Prunable,
    inputs: list[torch.Tensor],
    outputs: list[torch.Tensor],
    bias: bool,
    channels: torch.Tensor | None,
    max_rows: int | None,
    seed: int,
) -> LayerStats:
    """Statistics over the calibration batches: ``inputs`` reach the compressed ``layer``, ``outputs``
    come from the dense one (restricted to ``channels``). At most ``max_rows`` rows per batch, drawn
    with a seeded generator (same rows for inputs and outputs)."""
    g = groups_of(layer)
    gen = torch.Generator().manual_seed(seed)
    stats = None
    for x, y in zip(inputs, outputs, strict=True):
        keep = _rows(_n_rows(y), max_rows, gen)
        fx, ty = features(layer, x, keep), targets(y, g, channels)
        if keep is not None:
            ty = ty.index_select(1, keep)
        if bias:
            fx = torch.cat([fx, fx.new_ones(*fx.shape[:2], 1)], dim=2)
        if stats is None:
            stats = LayerStats.empty(g, ty.shape[2], fx.shape[2])
        stats.add(fx, ty)
    assert stats is not None
    return stats
