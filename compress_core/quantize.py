"""Weight quantization: 1-bit sign, k-bit fixed point (symmetric or asymmetric), fp16.

``quantize_tensor`` returns the integer codes with their scales and zero points (what the
artefact stores); ``QTensor.dequantize`` gives the fp32 values the simulated model computes with.
Zero weights (pruned) stay exactly zero under every scheme, so sparsity survives quantization.

Schemes, for a tensor or one output channel with values w:
- 1 bit: code = sign(w) in {-1, +1}, value = code * mean(|w| over non-zeros) (XNOR-Net's scale).
- k-bit symmetric: scale = max|w| / (2^(k-1) - 1); codes in [-(2^(k-1)-1), 2^(k-1)-1]
  (the restricted range keeps the grid symmetric around 0), at most 2^k - 1 levels.
- k-bit asymmetric ("dynamic range"): the [min, max] range (always including 0) is cut into
  2^k - 1 steps; integer zero point; at most 2^k levels.
For values inside the range the rounding error is at most scale / 2.

Real int8 kernels (static/dynamic, torch.ao) are in ``compress_core.int8``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .recipe import QuantSpec


@dataclass
class QTensor:
    codes: torch.Tensor  # int32 integer codes, same shape as the weight
    scale: torch.Tensor  # float32, shape (C,) per channel or () per tensor
    zero_point: torch.Tensor  # int32, same shape as scale
    bits: int
    axis: int | None  # 0 for per-channel, None for per-tensor

    def _expand(self, t: torch.Tensor) -> torch.Tensor:
        if self.axis is None:
            return t
        return t.view(-1, *([1] * (self.codes.dim() - 1)))

    def dequantize(self) -> torch.Tensor:
        scale = self._expand(self.scale)
        zp = self._expand(self.zero_point)
        return (self.codes - zp).to(torch.float32) * scale


def _reduce(w: torch.Tensor, per_channel: bool, fn: str) -> torch.Tensor:
    if not per_channel:
        return getattr(w, fn)()
    return getattr(w.reshape(w.shape[0], -1), fn)(dim=1)


def quantize_tensor(w: torch.Tensor, bits: int, scheme: str = "symmetric", per_channel: bool = True) -> QTensor:
    if not 1 <= bits <= 8:
        raise ValueError(f"integer quantization needs 1..8 bits; got {bits}")
    w = w.detach().float()
    per_channel = per_channel and w.dim() > 1
    axis = 0 if per_channel else None
    shape = (-1, *([1] * (w.dim() - 1))) if per_channel else ()

    if bits == 1:
        nz = w != 0
        absw = w.abs()
        if per_channel:
            flat_abs, flat_nz = absw.reshape(w.shape[0], -1), nz.reshape(w.shape[0], -1)
            scale = flat_abs.sum(1) / flat_nz.sum(1).clamp(min=1)
        else:
            scale = absw.sum() / nz.sum().clamp(min=1)
        codes = torch.sign(w).to(torch.int32)  # 0 stays 0 (pruned weights)
        return QTensor(codes, scale.float(), torch.zeros_like(scale, dtype=torch.int32), 1, axis)

    if scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        amax = _reduce(w.abs(), per_channel, "amax")
        scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
        codes = torch.clamp(torch.round(w / scale.view(shape)), -qmax, qmax).to(torch.int32)
        return QTensor(codes, scale.float(), torch.zeros_like(scale, dtype=torch.int32), bits, axis)

    if scheme == "asymmetric":
        qmax = 2 ** bits - 1
        lo = torch.clamp(_reduce(w, per_channel, "amin"), max=0.0)  # the range must hold 0 exactly
        hi = torch.clamp(_reduce(w, per_channel, "amax"), min=0.0)
        span = hi - lo
        scale = torch.where(span > 0, span / qmax, torch.ones_like(span))
        zp = torch.clamp(torch.round(-lo / scale), 0, qmax).to(torch.int32)
        codes = torch.clamp(torch.round(w / scale.view(shape)) + zp.view(shape), 0, qmax).to(torch.int32)
        return QTensor(codes, scale.float(), zp, bits, axis)

    raise ValueError(f"unknown quantization scheme {scheme!r}; choose symmetric or asymmetric")


def fake_quantize(w: torch.Tensor, bits: int, scheme: str = "symmetric", per_channel: bool = True) -> torch.Tensor:
    """The values a ``bits``-bit weight takes, as fp32 (fp16 round-trips through half precision)."""
    if bits == 32:
        return w.detach().clone()
    if bits == 16:
        return w.detach().half().float()
    return quantize_tensor(w, bits, scheme, per_channel).dequantize()


def quantize_weights_(layers: Sequence[tuple[str, nn.Module]], spec: QuantSpec) -> dict[str, QTensor]:
    """Replace each layer's weight by its quantized value in place; return the integer codes
    (empty for fp16/fp32). Biases stay fp32: they are a tiny share of the bytes."""
    codes: dict[str, QTensor] = {}
    per_channel = spec.granularity == "per_channel"
    with torch.no_grad():
        for name, module in layers:
            w = module.weight
            if spec.bits == 16:
                w.copy_(w.half().float())
            elif spec.bits < 16:
                q = quantize_tensor(w, spec.bits, spec.scheme, per_channel)
                codes[name] = q
                w.copy_(q.dequantize())
    return codes


def describe(spec: QuantSpec) -> str:
    if spec.bits == 32:
        return "fp32 weights"
    if spec.bits == 16:
        return "weights rounded to fp16, computed in fp32 (simulated)"
    g = spec.granularity.replace("_", "-")
    if spec.bits == 1:
        return f"1-bit sign weights with a {g} scale, dequantized to fp32 for compute (simulated)"
    return f"{spec.bits}-bit {spec.scheme} {g} weights dequantized to fp32 for compute (simulated)"
