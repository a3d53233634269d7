"""One tensor <-> one record plus its byte chunks: sparse layouts, k-bit codes, k-means codebooks
(indices bit-packed or Huffman-coded, ``entropy``) and byte shuffling.

Encoding (``encode_raw``, ``encode_q``, ``encode_codebook``) appends a tensor's chunks to a list and returns its record;
decoding (``decode``) reads the chunks back through a bounds-checked ``Reader`` and checks every
length against the record. The record fields are described in the package docstring. Pure numpy
below the record level: ``pack_bits``/``unpack_bits`` (k-bit codes), ``index_tokens``/
``index_positions`` (gaps between non-zeros) and the byte shuffle.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
import torch

from compress_core.engine.quantize import QTensor
from compress_core.files.artifact.entropy import huffman_decode, huffman_encode, huffman_lengths
from compress_core.files.artifact.errors import ArtifactError, field, shape

DTYPES = {"float32": "<f4", "float16": "<f2", "float64": "<f8", "int8": "i1", "uint8": "u1", "int16": "<i2",
          "int32": "<i4", "int64": "<i8", "bool": "?"}
LAYOUTS = ("dense", "bitmask", "index8", "index16")
CODINGS = ("packed", "huffman")  # how a k-means record stores its indices


# -- bit packing and sparse positions (pure numpy) ---------------------------------------------
def pack_bits(u: np.ndarray, bits: int) -> bytes:
    """Pack unsigned values < 2**bits, ``bits`` bits each, little-endian bit order."""
    u = np.ascontiguousarray(u, dtype=np.uint8).reshape(-1)
    if bits == 8:
        return u.tobytes()
    if bits == 4:
        u = np.append(u, np.uint8(0)) if len(u) % 2 else u
        return (u[0::2] | (u[1::2] << 4)).tobytes()
    planes = np.unpackbits(u.reshape(-1, 1), axis=1, bitorder="little")[:, :bits]
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_bits(buf: bytes | memoryview, bits: int, count: int) -> np.ndarray:
    """Inverse of ``pack_bits``: ``count`` uint8 values."""
    raw = np.frombuffer(buf, np.uint8)
    if bits == 8:
        return raw[:count].copy()
    if bits == 4:
        out = np.empty(2 * len(raw), np.uint8)
        out[0::2], out[1::2] = raw & 15, raw >> 4
        return out[:count]
    planes = np.unpackbits(raw, count=count * bits, bitorder="little").reshape(count, bits)
    return np.packbits(planes, axis=1, bitorder="little").reshape(count)


def index_tokens(idx: np.ndarray, width: int) -> np.ndarray:
    """Sorted positions -> gap tokens of ``width`` bits; the top value escapes (skip that many)."""
    esc = (1 << width) - 1
    gaps = np.diff(idx, prepend=-1) - 1
    skips = gaps // esc
    tokens = np.full(len(idx) + int(skips.sum()), esc, dtype=np.uint8 if width == 8 else "<u2")
    tokens[np.cumsum(skips + 1) - 1] = gaps % esc
    return tokens


def index_positions(tokens: np.ndarray, width: int) -> np.ndarray:
    """Inverse of ``index_tokens``: the sorted positions."""
    esc = (1 << width) - 1
    is_esc = tokens == esc
    steps = np.where(is_esc, esc, tokens.astype(np.int64) + 1)
    return (np.cumsum(steps) - 1)[~is_esc]


def _token_count(idx: np.ndarray, width: int) -> int:
    return len(idx) + int(((np.diff(idx, prepend=-1) - 1) // ((1 << width) - 1)).sum())


def _shuffle(values: np.ndarray) -> bytes:
    """Byte-shuffle (all first bytes, then all second bytes, ...): exponents compress together."""
    size = values.dtype.itemsize
    raw = np.ascontiguousarray(values).view(np.uint8)
    return raw.tobytes() if size == 1 else raw.reshape(-1, size).T.tobytes()


def _unshuffle(buf: memoryview, dtype: np.dtype, count: int) -> np.ndarray:
    raw = np.frombuffer(buf, np.uint8)
    if dtype.itemsize == 1:
        return raw.view(dtype).copy()
    return raw.reshape(dtype.itemsize, count).T.copy().view(dtype).reshape(count)


# -- encoding ----------------------------------------------------------------------------------
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
        costs += [("index8", _token_count(idx, 8) + value_bytes(nnz)),
                  ("index16", 2 * _token_count(idx, 16) + value_bytes(nnz))]
    for name, cost in costs:
        if cost < best[1]:
            best = (name, cost)
    if best[0] == "bitmask":
        return "bitmask", np.packbits(nz, bitorder="little").tobytes(), None
    if best[0].startswith("index"):
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
    rec = {"name": name, "shape": list(weight.shape), "dtype": "float32", "layout": layout, "nnz": int(nz.sum()),
           "store": "q", "q": {"bits": q.bits, "step": step, "offset": offset, "axis": 0 if per_channel else None}}
    parts = {"pos": positions, "val": values, "scale": _shuffle(scale.astype("<f4"))}
    if (zp != 0).any():
        parts["zp"] = _shuffle(zp.astype("<i4"))
    return _add_chunks(rec, parts, chunks)


def encode_codebook(name: str, weight: torch.Tensor, q: QTensor, chunks: list[bytes], entropy: bool = True
                    ) -> dict | None:
    """The record of a k-means weight (positions, indices, codebook), or None when ``q`` does not
    describe ``weight`` exactly. Indices are Huffman-coded when ``entropy`` and that deflates smaller."""
    k, per_channel = 1 << q.bits, q.axis is not None
    cb = q.codebook.detach().cpu().to(torch.float32).contiguous() if q.codebook is not None else None
    want = (weight.shape[0], k) if per_channel and weight.dim() else (k,)
    if cb is None or q.codes.shape != weight.shape or not 1 <= q.bits <= 8 or q.axis not in (0, None) \
            or tuple(cb.shape) != want or not torch.equal(q.dequantize(), weight):
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
    rec = {"name": name, "shape": list(weight.shape), "dtype": "float32", "layout": layout, "nnz": int(nz.sum()),
           "store": "codebook", "q": {"bits": q.bits, "axis": 0 if per_channel else None,
                                      "codebook": "float16" if fp16 else "float32", "coding": coding}}
    cb_bytes = _shuffle(half if fp16 else flat.astype("<f4"))
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
    return _add_chunks(rec, {"pos": positions, "val": _shuffle(kept)}, chunks)


def _add_chunks(rec: dict, parts: dict[str, bytes], chunks: list[bytes]) -> dict:
    rec["bytes"] = {k: len(v) for k, v in parts.items() if v or k == "val"}
    chunks.extend(v for k, v in parts.items() if k in rec["bytes"])
    return rec


# -- decoding ----------------------------------------------------------------------------------
class Reader:
    """Sequential, bounds-checked access to the tensor data."""

    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def take(self, rec: dict, part: str, expected: int | None, where: str) -> memoryview:
        sizes = field(rec, "bytes", dict, where)
        n = sizes.get(part, 0)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or (expected is not None and n != expected):
            raise ArtifactError(f"{where}: chunk {part!r} has {n!r} bytes, expected {expected}")
        if self.pos + n > len(self.data):
            raise ArtifactError(f"{where}: chunk {part!r} runs past the end of the data "
                                f"({self.pos + n:,} > {len(self.data):,} bytes)")
        self.pos += n
        return self.data[self.pos - n:self.pos]


def _positions(rd: Reader, rec: dict, layout: str, n: int, nnz: int, where: str) -> np.ndarray | None:
    """Flat indices of the stored values (None for dense)."""
    if layout == "dense":
        rd.take(rec, "pos", 0, where)
        return None
    if layout == "bitmask":
        mask = np.unpackbits(np.frombuffer(rd.take(rec, "pos", (n + 7) // 8, where), np.uint8), count=n,
                             bitorder="little").astype(bool)
        idx = np.flatnonzero(mask)
    else:
        width = 8 if layout == "index8" else 16
        buf = rd.take(rec, "pos", None, where)
        if len(buf) % (width // 8) or len(buf) // (width // 8) > n:  # every token advances >= 1 position
            raise ArtifactError(f"{where}: index chunk of {len(buf)} bytes does not fit {n} positions")
        idx = index_positions(np.frombuffer(buf, np.uint8 if width == 8 else "<u2"), width)
        if len(idx) and idx[-1] >= n:
            raise ArtifactError(f"{where}: index points past the tensor's {n} elements")
    if len(idx) != nnz:
        raise ArtifactError(f"{where}: {len(idx)} stored positions but the header says {nnz}")
    return idx


def decode(rd: Reader, rec: dict, where: str) -> tuple[torch.Tensor, QTensor | None]:
    """The tensor of one record (and its QTensor for k-bit codes), read from ``rd``."""
    dims = shape(rec, where)
    n = math.prod(dims)
    layout, store = field(rec, "layout", str, where), field(rec, "store", str, where)
    nnz = field(rec, "nnz", int, where)
    if layout not in LAYOUTS or not 0 <= nnz <= n:
        raise ArtifactError(f"{where}: bad layout {layout!r} or non-zero count {nnz}")
    idx = _positions(rd, rec, layout, n, nnz, where)
    m = n if idx is None else nnz
    if store == "q":
        return _decode_q(rd, rec, dims, idx, m, where)
    if store == "codebook":
        return _decode_codebook(rd, rec, dims, idx, m, where)
    if store not in DTYPES:
        raise ArtifactError(f"{where}: unknown value storage {store!r}")
    dtype = np.dtype(DTYPES[store])
    values = _unshuffle(rd.take(rec, "val", m * dtype.itemsize, where), dtype, m)
    full = values if idx is None else np.zeros(n, dtype)
    if idx is not None:
        full[idx] = values
    native = np.dtype(DTYPES[field(rec, "dtype", str, where)]).newbyteorder("=")
    return torch.from_numpy(full.astype(native)).reshape(dims), None


def _decode_q(rd: Reader, rec: dict, dims: tuple[int, ...], idx: np.ndarray | None, m: int,
              where: str) -> tuple[torch.Tensor, QTensor]:
    q = field(rec, "q", dict, where)
    bits, step, offset = field(q, "bits", int, where), field(q, "step", int, where), field(q, "offset", int, where)
    axis = q.get("axis")
    if not 1 <= bits <= 8 or step not in (1, 2) or not -256 <= offset <= 256 or axis not in (0, None) \
            or (axis == 0 and not dims) or rec.get("dtype") != "float32":
        raise ArtifactError(f"{where}: bad quantization parameters {q!r}")
    n = math.prod(dims)
    channels = dims[0] if axis == 0 else 1
    u = unpack_bits(rd.take(rec, "val", (m * bits + 7) // 8, where), bits, m)
    scale = _unshuffle(rd.take(rec, "scale", 4 * channels, where), np.dtype("<f4"), channels)
    has_zp = "zp" in field(rec, "bytes", dict, where)
    zp = _unshuffle(rd.take(rec, "zp", 4 * channels, where), np.dtype("<i4"), channels) if has_zp \
        else np.zeros(channels, np.int32)
    kept = u.astype(np.int32) * step + offset
    codes = kept if idx is None else np.repeat(zp, n // channels if channels else 0).astype(np.int32)
    if idx is not None:
        codes[idx] = kept
    per_shape = (channels,) if axis == 0 else ()
    qt = QTensor(torch.from_numpy(codes).reshape(dims), torch.from_numpy(scale.astype(np.float32).reshape(per_shape)),
                 torch.from_numpy(zp.astype(np.int32).reshape(per_shape)), bits, axis)
    return qt.dequantize(), qt


def _decode_codebook(rd: Reader, rec: dict, dims: tuple[int, ...], idx: np.ndarray | None, m: int,
                     where: str) -> tuple[torch.Tensor, QTensor]:
    q = field(rec, "q", dict, where)
    bits, axis, cb_store = field(q, "bits", int, where), q.get("axis"), q.get("codebook")
    if not 1 <= bits <= 8 or axis not in (0, None) or (axis == 0 and not dims) or rec.get("dtype") != "float32" \
            or cb_store not in ("float16", "float32") or q.get("coding") not in CODINGS:
        raise ArtifactError(f"{where}: bad k-means parameters {q!r}")
    k, rows = 1 << bits, dims[0] if axis == 0 else 1
    if q["coding"] == "huffman":
        lengths = np.frombuffer(rd.take(rec, "lens", k, where), np.uint8)
        u = huffman_decode(rd.take(rec, "val", None, where), lengths, m, where)
    else:
        u = unpack_bits(rd.take(rec, "val", (m * bits + 7) // 8, where), bits, m)
    dtype = np.dtype(DTYPES[cb_store])
    cb = _unshuffle(rd.take(rec, "cb", rows * k * dtype.itemsize, where), dtype, rows * k).astype(np.float32)
    codes = u.astype(np.int32) if idx is None else np.full(math.prod(dims), -1, np.int32)
    if idx is not None:
        codes[idx] = u
    per_shape = (rows,) if axis == 0 else ()
    qt = QTensor(torch.from_numpy(codes).reshape(dims), torch.ones(per_shape),
                 torch.zeros(per_shape, dtype=torch.int32), bits, axis,
                 torch.from_numpy(cb).reshape((rows, k) if axis == 0 else (k,)))
    return qt.dequantize(), qt
