"""Weight quantization: 1-bit sign, k-bit fixed point (symmetric or asymmetric), k-means weight
sharing, fp16.

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
- k-means weight sharing ("kmeans", Han et al. 2016 Deep Compression; coremltools' palettization):
  the layer's (or one output channel's) NON-ZERO weights are clustered into 2^k shared values by
  1-D Lloyd iterations from a linear initialisation between their min and max (Han et al. found
  linear init best: it keeps the rare large weights as centroids), until no assignment changes
  (at most ``KMEANS_MAX_ITER``). Deterministic (no random init). The centroids are then rounded to
  fp16 (what the artefact stores; the weights are reassigned to the nearest rounded centroid), so
  ``QTensor.codebook`` holds fp16-exact fp32 values and ``codes`` the centroid index of each weight,
  -1 where the weight is zero (pruned zeros stay exactly zero and belong to no cluster).

Real int8 kernels (static/dynamic, torch.ao) are in ``compress_core.engine.int8``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from compress_core.base.qtensor import QTensor
from compress_core.base.recipe import QuantSpec
from compress_core.engine.prune.layers import Prunable


def _reduce(w: torch.Tensor, per_channel: bool, fn: str) -> torch.Tensor:
    if not per_channel:
        return getattr(w, fn)()
    return getattr(w.reshape(w.shape[0], -1), fn)(dim=1)


def quantize_tensor(w: torch.Tensor, bits: int, scheme: str = "symmetric", per_channel: bool = True) -> QTensor:
    if not 1 <= bits <= 8:
        raise ValueError(f"integer quantization needs 1..8 bits; got {bits}")
    w = w.detach().float()
    per_channel = per_channel and w.dim() > 1
    if scheme == "kmeans":
        return kmeans_tensor(w, bits, per_channel)
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
        qmax = 2**bits - 1
        lo = torch.clamp(_reduce(w, per_channel, "amin"), max=0.0)  # the range must hold 0 exactly
        hi = torch.clamp(_reduce(w, per_channel, "amax"), min=0.0)
        span = hi - lo
        scale = torch.where(span > 0, span / qmax, torch.ones_like(span))
        zp = torch.clamp(torch.round(-lo / scale), 0, qmax).to(torch.int32)
        codes = torch.clamp(torch.round(w / scale.view(shape)) + zp.view(shape), 0, qmax).to(torch.int32)
        return QTensor(codes, scale.float(), zp, bits, axis)

    raise ValueError(f"unknown quantization scheme {scheme!r}; choose symmetric, asymmetric or kmeans")


KMEANS_MAX_ITER = 300  # Lloyd iterations cap (each is k - 1 binary searches per row: about a millisecond)


def _assign(values: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (rows of sorted centroids; ties go to the lower one)."""
    mid = ((centroids[:, 1:] + centroids[:, :-1]) / 2).contiguous()
    return torch.searchsorted(mid, values.contiguous())


def _lloyd(v: torch.Tensor, valid: torch.Tensor, k: int, max_iter: int) -> torch.Tensor:
    """Per-row 1-D k-means of the ``valid`` entries of ``v`` (float64, (R, N)): sorted (R, k) centroids.

    In 1-D each cluster is the run of sorted values between two midpoints, so an iteration is k - 1
    binary searches and a prefix-sum difference per row (the values are sorted once)."""
    inf = torch.tensor(float("inf"), dtype=v.dtype)
    if v.shape[0] == 1:  # one row: sort only its non-zeros (90 %+ of a pruned layer are zeros)
        s = v[valid].sort().values[None] if valid.any() else torch.full((1, 1), float("inf"), dtype=v.dtype)
    else:
        s = torch.where(valid, v, inf).sort(1).values  # the valid values first, ascending
    n = valid.sum(1, keepdim=True)
    prefix = torch.cat([torch.zeros_like(s[:, :1]), torch.where(torch.isinf(s), 0.0, s).cumsum(1)], 1)
    last = (n - 1).clamp(min=0)
    lo, hi = s[:, :1], s.gather(1, last)
    lo, hi = torch.where(n > 0, lo, 0.0), torch.where(n > 0, hi, 0.0)
    c = lo + (hi - lo) * torch.linspace(0, 1, k, dtype=v.dtype)  # linear initialisation
    prev = None
    for _ in range(max_iter):
        mid = ((c[:, 1:] + c[:, :-1]) / 2).contiguous()
        cut = torch.minimum(torch.searchsorted(s, mid, right=True), n)  # values <= mid go to the lower cluster
        bounds = torch.cat([torch.zeros_like(n), cut, n], 1)
        if prev is not None and torch.equal(bounds, prev):
            break  # converged: no weight changed cluster
        prev = bounds
        counts = (bounds[:, 1:] - bounds[:, :-1]).to(v.dtype)
        sums = prefix.gather(1, bounds[:, 1:]) - prefix.gather(1, bounds[:, :-1])
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)  # an empty cluster keeps its centroid
        c = c.sort(1).values  # 1-D Lloyd keeps the order; sorting makes the midpoints safe regardless
    return c


def storable_codebook(c: torch.Tensor) -> torch.Tensor:
    """Shared values rounded to fp16 (what the artefact then stores, exactly) as fp32; fp32 if any
    would overflow fp16."""
    half = c.to(torch.float16).to(torch.float32)
    return half if torch.isfinite(half).all() else c.float()


def kmeans_tensor(w: torch.Tensor, bits: int, per_channel: bool = False, max_iter: int = KMEANS_MAX_ITER) -> QTensor:
    """k-means weight sharing: 2^bits shared values over the non-zero weights (per tensor or per
    output channel); zeros keep code -1 and stay exactly zero. See the module docstring."""
    if not 1 <= bits <= 8:
        raise ValueError(f"k-means weight sharing needs 1..8 bits; got {bits}")
    w = w.detach().float()
    per_channel = per_channel and w.dim() > 1
    v = w.reshape(w.shape[0] if per_channel else 1, -1).double()
    valid = v != 0
    c = _lloyd(v, valid, 2**bits, max_iter)
    codebook = storable_codebook(c)
    codes = torch.where(valid, _assign(v, codebook.double()), -1).to(torch.int32).reshape(w.shape)
    shape = (w.shape[0],) if per_channel else ()
    return QTensor(
        codes,
        torch.ones(shape),
        torch.zeros(shape, dtype=torch.int32),
        bits,
        0 if per_channel else None,
        codebook if per_channel else codebook.reshape(-1),
    )


def fake_quantize(w: torch.Tensor, bits: int, scheme: str = "symmetric", per_channel: bool = True) -> torch.Tensor:
    """The values a ``bits``-bit weight takes, as fp32 (fp16 round-trips through half precision)."""
    if bits == 32:
        return w.detach().clone()
    if bits == 16:
        return w.detach().half().float()
    return quantize_tensor(w, bits, scheme, per_channel).dequantize()


def quantize_weights_(layers: Sequence[tuple[str, Prunable]], spec: QuantSpec) -> dict[str, QTensor]:
    """Replace each layer's weight by its quantized value in place; return the integer codes
    (empty for fp16/fp32). Biases stay fp32: they are a tiny share of the bytes, except under k-means
    weight sharing, where they are rounded to fp16 (at 2-4 bits a weight, fp32 biases would be a fifth
    of a pruned LeNet-5's file; the artefact stores them as fp16, exactly)."""
    codes: dict[str, QTensor] = {}
    per_channel = spec.granularity == "per_channel"
    with torch.no_grad():
        for name, module in layers:
            w, bits = module.weight, spec.bits_of(name)  # QuantSpec.layer_bits overrides bits per layer
            if bits == 16:
                w.copy_(w.half().float())
            elif bits < 16:
                q = quantize_tensor(w, bits, spec.scheme, per_channel)
                codes[name] = q
                w.copy_(q.dequantize())
                bias = getattr(module, "bias", None)
                if spec.scheme == "kmeans" and bias is not None:
                    bias.copy_(bias.half().float())
    return codes


def describe(spec: QuantSpec) -> str:
    if spec.layer_bits:
        widths = sorted({spec.bits, *(b for _, b in spec.layer_bits)})
        return (
            f"mixed precision: {len(spec.layer_bits)} layer(s) set apart from the default {spec.bits} bits "
            f"({', '.join(map(str, widths))}-bit {spec.scheme} weights), dequantized to fp32 for compute (simulated)"
        )
    if spec.bits == 32:
        return "fp32 weights"
    if spec.bits == 16:
        return "weights rounded to fp16, computed in fp32 (simulated)"
    g = spec.granularity.replace("_", "-")
    if spec.scheme == "kmeans":
        where = "per output channel" if spec.granularity == "per_channel" else "per layer"
        return (
            f"k-means weight sharing, 2^{spec.bits} = {2**spec.bits} shared values {where} (pruned zeros "
            "stay zero), fp16 biases; simulated: dequantized to fp32 for compute"
        )
    if spec.bits == 1:
        return f"1-bit sign weights with a {g} scale, dequantized to fp32 for compute (simulated)"
    return f"{spec.bits}-bit {spec.scheme} {g} weights dequantized to fp32 for compute (simulated)"
