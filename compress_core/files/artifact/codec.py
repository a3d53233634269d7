"""One tensor -> one record plus its byte chunks: sparse layouts, k-bit codes, k-means codebooks
(indices bit-packed or Huffman-coded, ``entropy``) and byte shuffling; ``decoding`` reads them back.

Encoding (``encode_raw``, ``encode_q``, ``encode_codebook``) appends a tensor's chunks to a list and returns its
record, laid out as the fewest bytes of dense / bitmask / index8 / index16 positions. The record fields are
described in the package docstring; ``DTYPES``, ``LAYOUTS`` and ``CODINGS`` are the values its fields may take.
The numpy below the record level is ``bits``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
import torch

from compress_core.engine.quantize import QTensor
from compress_core.files.artifact.bits import index_tokens, pack_bits, shuffle, token_count
from compress_core.files.artifact.entropy import huffman_encode, huffman_lengths

DTYPES = {
    "float32": "<f4",
    "float16": "<f2",
    "float64": "<f8",
    "int8": "i1",
    "uint8": "u1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "bool": "?",
}
LAYOUTS = ("dense", "bitmask", "index8", "index16")
CODINGS = ("packed", "huffman")  # how a k-means record stores its indices


def _layout(nz: np.ndarray, value_bytes: Callable[[int], int], dense_ok: bool) -> tuple[str, bytes, np.ndarray | None]:
    """The smallest of dense / bitmask / index8 / index16 for these non-zeros: (name, positions, idx)."""
    n, nnz = len(nz), int(nz.sum())
    best = ("dense", value_bytes(n)) if dense_ok else ("bitmask", math.inf)
    if nnz == n and dense_ok:
        return "dense", b"", None
    costs = [("bitmask", (n + 7) // 8 + value_bytes(nnz))]
    idx = None
    if nnz + value_bytes(nnz) < min(best[1], costs[0][1]):  # index could win: count its tokens
        idx = np.flatnonzero(nz)
        costs += [
            ("index8", token_count(idx, 8) + value_bytes(nnz)),
            ("index16", 2 * token_count(idx, 16) + value_bytes(nnz)),
        ]
    for name, cost in costs:
        if cost < best[1]:
            best = (name, cost)
    if best[0] == "bitmask":
        return "bitmask", np.packbits(nz, bitorder="little").tobytes(), None
    if best[0].startswith("index") and idx is not None:  # only priced when idx was built
        width = int(best[0][5:])
        return best[0], index_tokens(idx, width).tobytes(), idx
    return "dense", b"", None


def _q_mapping(codes: np.ndarray, bits: int) -> tuple[int, int] | None:
    """(step, offset) with codes = u * step + offset, u in [0, 2**bits); None if they do not fit."""
    if len(codes) == 0:
        return (1, 0)
    lo, hi = int(codes.min()), int(codes.max())
    if bits == 1:
        return (2, -1) if lo >= -1 and hi <= 1 and not (codes == 0).any() else None
    offset = min(lo, 0)
    return (1, offset) if hi - offset <= (1 << bits) - 1 else None


def encode_q(name: str, weight: torch.Tensor, q: QTensor, chunks: list[bytes]) -> dict | None:
    """The record of a k-bit quantized weight, or None when its codes cannot describe it exactly."""
    if q.codes.shape != weight.shape or not 1 <= q.bits <= 8 or not torch.equal(q.dequantize(), weight):
        return None  # codes no longer describe the weight: store the float values instead (exact)
    codes = q.codes.detach().cpu().to(torch.int32).numpy().reshape(-1)
    zp = q.zero_point.detach().cpu().to(torch.int32).numpy().reshape(-1)
    scale = q.scale.detach().cpu().to(torch.float32).numpy().reshape(-1)
    n = codes.size
    per_channel = q.axis is not None
    if per_channel and (q.axis != 0 or len(scale) != weight.shape[0] or len(zp) != len(scale)):
        return None
    zp_full = np.repeat(zp, n // max(len(zp), 1)) if per_channel else np.broadcast_to(zp, (n,))
    nz = codes != zp_full
    dense_map = _q_mapping(codes, q.bits)
    layout, positions, idx = _layout(nz, lambda m: (m * q.bits + 7) // 8, dense_map is not None)
    kept = codes if layout == "dense" else codes[nz] if idx is None else codes[idx]
    mapping = dense_map if layout == "dense" else _q_mapping(kept, q.bits)
    if mapping is None:
        return None
    step, offset = mapping
    values = pack_bits(((kept.astype(np.int64) - offset) // step).astype(np.uint8), q.bits)
    rec = {
        "name": name,
        "shape": list(weight.shape),
        "dtype": "float32",
        "layout": layout,
        "nnz": int(nz.sum()),
        "store": "q",
        "q": {"bits": q.bits, "step": step, "offset": offset, "axis": 0 if per_channel else None},
    }
    parts = {"pos": positions, "val": values, "scale": shuffle(scale.astype("<f4"))}
    if (zp != 0).any():
        parts["zp"] = shuffle(zp.astype("<i4"))
    return _add_chunks(rec, parts, chunks)


def encode_codebook(
    name: str, weight: torch.Tensor, q: QTensor, chunks: list[bytes], entropy: bool = True
) -> dict | None:
    """The record of a k-means weight (positions, indices, codebook), or None when ``q`` does not
    describe ``weight`` exactly. Indices are Huffman-coded when ``entropy`` and that deflates smaller."""
    k, per_channel = 1 << q.bits, q.axis is not None
    cb = q.codebook.detach().cpu().to(torch.float32).contiguous() if q.codebook is not None else None
    want = (weight.shape[0], k) if per_channel and weight.dim() else (k,)
    if (
        cb is None
        or q.codes.shape != weight.shape
        or not 1 <= q.bits <= 8
        or q.axis not in (0, None)
        or tuple(cb.shape) != want
        or not torch.equal(q.dequantize(), weight)
    ):
        return None
    codes = q.codes.detach().cpu().numpy().reshape(-1).astype(np.int64)
    if codes.size and (codes.min() < -1 or codes.max() >= k):
        return None
    nz = codes >= 0  # -1: a zero weight, in no cluster
    layout, positions, idx = _layout(nz, lambda m: (m * q.bits + 7) // 8, bool(nz.all()))
    kept = (codes if layout == "dense" else codes[nz] if idx is None else codes[idx]).astype(np.uint8)
    flat = cb.numpy().reshape(-1)
    half = flat.astype("<f2")
    fp16 = np.array_equal(half.astype("<f4").view(np.uint32), flat.view(np.uint32))
    coding, parts = _index_coding(kept, q.bits, entropy)
    rec = {
        "name": name,
        "shape": list(weight.shape),
        "dtype": "float32",
        "layout": layout,
        "nnz": int(nz.sum()),
        "store": "codebook",
        "q": {
            "bits": q.bits,
            "axis": 0 if per_channel else None,
            "codebook": "float16" if fp16 else "float32",
            "coding": coding,
        },
    }
    cb_bytes = shuffle(half if fp16 else flat.astype("<f4"))
    return _add_chunks(rec, {"pos": positions, **parts, "cb": cb_bytes}, chunks)


def _deflated(data: bytes) -> int:
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)  # as the container compresses the body
    return len(comp.compress(data) + comp.flush())


def _index_coding(kept: np.ndarray, bits: int, entropy: bool) -> tuple[str, dict[str, bytes]]:
    """("packed", {val}) or ("huffman", {lens, val}): Huffman only where it deflates smaller."""
    packed = pack_bits(kept, bits)
    if not entropy or len(kept) == 0:
        return "packed", {"val": packed}
    lengths = huffman_lengths(np.bincount(kept, minlength=1 << bits))
    table, stream = lengths.tobytes(), huffman_encode(kept, lengths)
    if _deflated(table + stream) < _deflated(packed):
        return "huffman", {"lens": table, "val": stream}
    return "packed", {"val": packed}


def encode_raw(name: str, t: torch.Tensor, chunks: list[bytes], fp16: bool = False) -> dict:
    """The record of a tensor stored as raw values (as float16 when ``fp16`` and that is exact)."""
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise ValueError(f"cannot store tensor {name!r} of dtype {dtype}; supported: {', '.join(DTYPES)}")
    flat = t.detach().cpu().contiguous().numpy().reshape(-1).astype(DTYPES[dtype], copy=False)
    store = dtype
    if fp16 and dtype == "float32":
        half = flat.astype("<f2")
        if np.array_equal(half.astype("<f4").view(np.uint32), flat.view(np.uint32)):
            flat, store = half, "float16"
    nz = flat != 0  # -0.0 (what masking leaves on negative weights) is zero; it loads as +0.0
    layout, positions, idx = _layout(nz, lambda m: m * flat.dtype.itemsize, True)
    kept = flat if layout == "dense" else flat[nz] if idx is None else flat[idx]
    rec = {"name": name, "shape": list(t.shape), "dtype": dtype, "layout": layout, "nnz": int(nz.sum()), "store": store}
    return _add_chunks(rec, {"pos": positions, "val": shuffle(kept)}, chunks)


def _add_chunks(rec: dict, parts: dict[str, bytes], chunks: list[bytes]) -> dict:
    rec["bytes"] = {k: len(v) for k, v in parts.items() if v or k == "val"}
    chunks.extend(v for k, v in parts.items() if k in rec["bytes"])
    return rec
