"""The k-bit grid a reconstructed layer must land on, and its integer codes.

``Grid.fit`` takes the grid (scale and zero point per output channel or per tensor) from
``quantize.quantize_tensor``'s own rule applied to the re-fitted float weights, optionally with the
range shrunk by a clipping factor chosen per channel to minimise the output error of plain rounding,
``(Q(w) - w)^T H (Q(w) - w)`` (the layer-output-aware clipping search of GPTQ's reference code and of
Nagel et al. 2021's white paper; a narrower range trades clipped outliers for finer steps, which
matters most at 2-3 bits). The scheme is unchanged: symmetric codes stay in [-(2^(k-1)-1), 2^(k-1)-1]
with zero point 0, asymmetric codes in [0, 2^k - 1] with an integer zero point, 1-bit codes in {-1, +1}
with the XNOR-Net mean-|w| scale. ``project`` rounds weight columns to the grid (GPTQ's quantizer),
with pruned positions held at the zero point, and ``qtensor`` returns the codes whose dequantized
values are the layer's weights, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from compress_core.base.recipe import QuantSpec
from compress_core.engine.quantize import QTensor, quantize_tensor

CLIP_FACTORS = tuple(1.0 - 0.05 * i for i in range(11))  # 1.0 ... 0.5 of the min/max range


@dataclass
class Grid:
    """Per-row scale and zero point (float64 copies of the float32 values the QTensor stores)."""

    bits: int
    scale: torch.Tensor  # (rows,) float32
    zero_point: torch.Tensor  # (rows,) int32
    per_channel: bool
    qmin: int
    qmax: int

    @classmethod
    def fit(cls, weight: torch.Tensor, spec: QuantSpec, H: torch.Tensor | None = None, clip: bool = True) -> Grid:
        """The grid for ``weight`` (rows, ...) (float); with ``H`` (rows' shared (d, d) Hessian, or one per
        group stacked as (g, d, d)) and ``clip``, the per-row clipping factor of least output error."""
        per_channel = spec.granularity == "per_channel" and weight.dim() > 1
        best = cls._from_rule(weight.float(), spec, per_channel)
        if not clip or H is None or spec.bits == 1:
            return best
        flat = weight.double().reshape(weight.shape[0], -1)
        best_err = best.rounding_error(flat, H)
        for f in CLIP_FACTORS[1:]:
            grid = cls._from_rule(weight.float() * f, spec, per_channel)
            err = grid.rounding_error(flat, H)
            better = err < best_err if per_channel else (err.sum() < best_err.sum()).expand_as(err)
            best.scale = torch.where(better, grid.scale, best.scale)
            best.zero_point = torch.where(better, grid.zero_point, best.zero_point)
            best_err = torch.where(better, err, best_err)
        return best

    @classmethod
    def _from_rule(cls, weight: torch.Tensor, spec: QuantSpec, per_channel: bool) -> Grid:
        q = quantize_tensor(weight, spec.bits, spec.scheme, per_channel)
        rows = weight.shape[0]
        scale = q.scale.expand(rows).clone() if q.scale.dim() == 0 else q.scale.clone()
        zp = q.zero_point.expand(rows).clone() if q.zero_point.dim() == 0 else q.zero_point.clone()
        if spec.bits == 1:
            lo, hi = -1, 1
        elif spec.scheme == "symmetric":
            lo, hi = -(2 ** (spec.bits - 1) - 1), 2 ** (spec.bits - 1) - 1
        else:
            lo, hi = 0, 2**spec.bits - 1
        return cls(spec.bits, scale, zp, per_channel, lo, hi)

    def _sz(self, rows: slice | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cache = getattr(self, "_cache", None)  # float64 copies, rebuilt if the scale or zero point changed
        if cache is None or cache[0] is not self.scale or cache[1] is not self.zero_point:
            cache = self._cache = (self.scale, self.zero_point, self.scale.double(), self.zero_point.double())
        s, z = cache[2], cache[3]
        if rows is not None:
            s, z = s[rows], z[rows]
        return s.unsqueeze(1), z.unsqueeze(1)

    def codes(self, w: torch.Tensor, rows: slice | torch.Tensor | None = None) -> torch.Tensor:
        """Integer codes (float64 holding integers) of ``w`` (rows, k)."""
        s, z = self._sz(rows)
        if self.bits == 1:
            return torch.sign(w)
        return torch.clamp(torch.round(w / s) + z, self.qmin, self.qmax)

    def values(self, codes: torch.Tensor, rows: slice | torch.Tensor | None = None) -> torch.Tensor:
        s, z = self._sz(rows)
        return (codes - z) * s

    def project(
        self, w: torch.Tensor, keep: torch.Tensor | None = None, rows: slice | torch.Tensor | None = None
    ) -> torch.Tensor:
        """``w`` (rows, k) rounded to the grid; positions where ``keep`` is False become 0 (the zero point)."""
        q = self.values(self.codes(w, rows), rows)
        return q if keep is None else q * keep.to(q.dtype)

    def rounding_error(self, w: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        """Per-row ``(Q(w) - w)^T H (Q(w) - w)``; ``H`` (d, d) or (g, d, d) with rows split evenly by group."""
        e = self.project(w) - w
        if H.dim() == 2:
            return ((e @ H) * e).sum(1)
        g = H.shape[0]
        eg = e.view(g, -1, e.shape[1])
        return (torch.bmm(eg, H) * eg).sum(-1).reshape(-1)

    def qtensor(self, weight: torch.Tensor, keep: torch.Tensor | None) -> QTensor:
        """The QTensor of ``weight`` (already on this grid): codes at the zero point where not kept."""
        flat = weight.double().reshape(weight.shape[0], -1)
        codes = self.codes(flat)
        if keep is not None:
            k = keep.reshape(weight.shape[0], -1)
            codes = torch.where(k, codes, self.zero_point.double().unsqueeze(1).expand_as(codes))
        codes = codes.to(torch.int32).view_as(weight)
        if self.per_channel:
            return QTensor(codes, self.scale.float().clone(), self.zero_point.clone(), self.bits, 0)
        return QTensor(codes, self.scale[0].float().clone(), self.zero_point[0].clone(), self.bits, None)
