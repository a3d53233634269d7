"""One record -> one tensor: the chunks of a record read back through a bounds-checked ``Reader``, every length
checked against the record (``codec`` writes them; the record fields are described in the package docstring).
A bad record raises ``ArtifactError``, never an IndexError or a wrong tensor."""

from __future__ import annotations

import math

import numpy as np
import torch

from compress_core.engine.quantize import QTensor
from compress_core.files.artifact.bits import index_positions, unpack_bits, unshuffle
from compress_core.files.artifact.codec import CODINGS, DTYPES, LAYOUTS
from compress_core.files.artifact.entropy import huffman_decode
from compress_core.files.artifact.errors import ArtifactError, field, shape


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
            raise ArtifactError(
                f"{where}: chunk {part!r} runs past the end of the data ({self.pos + n:,} > {len(self.data):,} bytes)"
            )
        self.pos += n
        return self.data[self.pos - n : self.pos]


def _positions(rd: Reader, rec: dict, layout: str, n: int, nnz: int, where: str) -> np.ndarray | None:
    """Flat indices of the stored values (None for dense)."""
    if layout == "dense":
        rd.take(rec, "pos", 0, where)
        return None
    if layout == "bitmask":
        mask = np.unpackbits(
            np.frombuffer(rd.take(rec, "pos", (n + 7) // 8, where), np.uint8), count=n, bitorder="little"
        ).astype(bool)
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
    values = unshuffle(rd.take(rec, "val", m * dtype.itemsize, where), dtype, m)
    full = values if idx is None else np.zeros(n, dtype)
    if idx is not None:
        full[idx] = values
    native = np.dtype(DTYPES[field(rec, "dtype", str, where)]).newbyteorder("=")
    return torch.from_numpy(full.astype(native)).reshape(dims), None


def _decode_q(
    rd: Reader, rec: dict, dims: tuple[int, ...], idx: np.ndarray | None, m: int, where: str
) -> tuple[torch.Tensor, QTensor]:
    q = field(rec, "q", dict, where)
    bits, step, offset = field(q, "bits", int, where), field(q, "step", int, where), field(q, "offset", int, where)
    axis = q.get("axis")
    if (
        not 1 <= bits <= 8
        or step not in (1, 2)
        or not -256 <= offset <= 256
        or axis not in (0, None)
        or (axis == 0 and not dims)
        or rec.get("dtype") != "float32"
    ):
        raise ArtifactError(f"{where}: bad quantization parameters {q!r}")
    n = math.prod(dims)
    channels = dims[0] if axis == 0 else 1
    u = unpack_bits(rd.take(rec, "val", (m * bits + 7) // 8, where), bits, m)
    scale = unshuffle(rd.take(rec, "scale", 4 * channels, where), np.dtype("<f4"), channels)
    has_zp = "zp" in field(rec, "bytes", dict, where)
    zp = (
        unshuffle(rd.take(rec, "zp", 4 * channels, where), np.dtype("<i4"), channels)
        if has_zp
        else np.zeros(channels, np.int32)
    )
    kept = u.astype(np.int32) * step + offset
    codes = kept if idx is None else np.repeat(zp, n // channels if channels else 0).astype(np.int32)
    if idx is not None:
        codes[idx] = kept
    per_shape = (channels,) if axis == 0 else ()
    qt = QTensor(
        torch.from_numpy(codes).reshape(dims),
        torch.from_numpy(scale.astype(np.float32).reshape(per_shape)),
        torch.from_numpy(zp.astype(np.int32).reshape(per_shape)),
        bits,
        axis,
    )
    return qt.dequantize(), qt


def _decode_codebook(
    rd: Reader, rec: dict, dims: tuple[int, ...], idx: np.ndarray | None, m: int, where: str
) -> tuple[torch.Tensor, QTensor]:
    q = field(rec, "q", dict, where)
    bits, axis, cb_store = field(q, "bits", int, where), q.get("axis"), q.get("codebook")
    if (
        not 1 <= bits <= 8
        or axis not in (0, None)
        or (axis == 0 and not dims)
        or rec.get("dtype") != "float32"
        or cb_store not in ("float16", "float32")
        or q.get("coding") not in CODINGS
    ):
        raise ArtifactError(f"{where}: bad k-means parameters {q!r}")
    k, rows = 1 << bits, dims[0] if axis == 0 else 1
    if q["coding"] == "huffman":
        lengths = np.frombuffer(rd.take(rec, "lens", k, where), np.uint8)
        u = huffman_decode(rd.take(rec, "val", None, where), lengths, m, where)
    else:
        u = unpack_bits(rd.take(rec, "val", (m * bits + 7) // 8, where), bits, m)
    dtype = np.dtype(DTYPES[cb_store])
    cb = unshuffle(rd.take(rec, "cb", rows * k * dtype.itemsize, where), dtype, rows * k).astype(np.float32)
    codes = u.astype(np.int32) if idx is None else np.full(math.prod(dims), -1, np.int32)
    if idx is not None:
        codes[idx] = u
    per_shape = (rows,) if axis == 0 else ()
    qt = QTensor(
        torch.from_numpy(codes).reshape(dims),
        torch.ones(per_shape),
        torch.zeros(per_shape, dtype=torch.int32),
        bits,
        axis,
        torch.from_numpy(cb).reshape((rows, k) if axis == 0 else (k,)),
    )
    return qt.dequantize(), qt
