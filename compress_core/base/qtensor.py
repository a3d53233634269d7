"""``QTensor``: the integer codes of one quantized weight with their scales, zero points or codebook.

A plain record (what the artefact stores and every stage passes around); ``compress_core.engine.quantize``
makes them, ``dequantize`` gives back the fp32 values the simulated model computes with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class QTensor:
    codes: torch.Tensor  # int32 integer codes, same shape as the weight
    scale: torch.Tensor  # float32, shape (C,) per channel or () per tensor
    zero_point: torch.Tensor  # int32, same shape as scale
    bits: int
    axis: int | None  # 0 for per-channel, None for per-tensor
    # k-means weight sharing: fp32 shared values, shape (2^bits,) per tensor or (C, 2^bits) per channel;
    # then codes index it (-1 = a zero weight) and scale/zero_point are unused (1 and 0).
    codebook: torch.Tensor | None = None

    def _expand(self, t: torch.Tensor) -> torch.Tensor:
        if self.axis is None:
            return t
        return t.view(-1, *([1] * (self.codes.dim() - 1)))

    def dequantize(self) -> torch.Tensor:
        if self.codebook is not None:
            return lookup(self.codebook, self.codes)
        scale = self._expand(self.scale)
        zp = self._expand(self.zero_point)
        return (self.codes - zp).to(torch.float32) * scale


def lookup(codebook: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """codebook[codes] as fp32 (row c of a (C, K) codebook for output channel c); 0 where codes < 0."""
    rows = codebook.reshape(-1, codebook.shape[-1]) if codebook.dim() else codebook.reshape(1, 1)
    flat = codes.reshape(rows.shape[0], -1).long()
    values = torch.gather(rows.to(torch.float32), 1, flat.clamp(min=0))
    return torch.where(flat >= 0, values, torch.zeros((), dtype=torch.float32)).reshape(codes.shape)
