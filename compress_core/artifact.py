"""The compressed artefact file (``.psz``): what a compressed model really weighs on disk.

Layout (little-endian)::

    offset  size  field
    0       8     magic  b"\\x89PSZ\\r\\n\\x1a\\n"  (PNG-style: catches text-mode and truncated copies)
    8       2     format version (1)
    10      1     codec of the body: 0 none, 1 zlib (raw deflate, level 6), 2 lzma (xz)
    11      1     flags (0)
    12      4     header_len: bytes of the JSON header at the start of the body
    16      8     body_len: uncompressed body bytes (JSON header + tensor data)
    24      8     stored_len: compressed body bytes that follow (the file is exactly 36 + stored_len)
    32      4     crc32 of the uncompressed body
    36      ...   the body, compressed as one stream

The JSON header (UTF-8) holds ``model_id``, an architecture fingerprint (module names and types
of ``models.build(model_id)``), the ``recipe``, the ``kernels``, the attributes of parameter-free
modules (``modules``: PadShortcut planes), the module swaps structured pruning made (``replaced``:
PadShortcut -> ChannelScatter, whose index maps are ordinary buffers), the names of layers
that had unstructured masks, ``meta`` (simulation notes, parameter counts, writer) and one
record per tensor: the float model's state_dict entries in order (``tensors``) and, for models on
int8 kernels, the int8 state (``int8_state``). After the header, the tensor data is a plain
concatenation of chunks in record order; each record names its chunks and their byte lengths.

A record ``{name, shape, dtype, layout, nnz, store, [q], bytes: {pos, val, [scale], [zp]}}`` stores
a tensor as the *layout* of its non-zero positions plus the values at those positions:
- ``layout``: ``dense`` (every position), ``bitmask`` (np.packbits of the non-zero mask, 1 bit per
  weight) or ``index8``/``index16`` (gaps between non-zeros as uint8/uint16 tokens; the top token
  value is an escape meaning "skip that many positions"): whichever needs the fewest bytes;
- ``store`` a dtype name (``float32``; ``float16`` for Conv/Linear weights when the recipe has 16
  bits; ``int8``, ``int64``, ...): raw little-endian values, byte-shuffled so the compressor sees the
  exponent bytes together; ``q``: k-bit codes (1..8 bits) bit-packed, ``code = u * step + offset``
  (``step`` 2 for 1-bit signs), fp32 ``scale`` and int32 ``zp`` per channel (``axis`` 0) or per
  tensor (no ``zp`` chunk: all zero); ``none``: a float tensor of an int8 model (shape only, the
  ``int8_state`` records hold its weights). Positions outside the layout hold 0 or the zero point.
  Weights are rebuilt with ``QTensor.dequantize``, so they are bit-identical.
``-0.0`` (what masking leaves on negative weights) counts as zero and loads as ``+0.0``: equal
values, so ``torch.equal`` holds for weights and outputs. The loader never unpickles anything: it
parses JSON and raw bytes, checks every length, shape and dtype against the header, the file size
and the base architecture (pruning only shrinks tensors), and raises ``ArtifactError`` otherwise.
"""

from __future__ import annotations

import copy
import hashlib
import json
import lzma
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__, models
from .pipeline import Compressed, Result, Workbench
from .prune.unstructured import prunable_layers
from .quantize import QTensor
from .recipe import Recipe

MAGIC = b"\x89PSZ\r\n\x1a\n"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<8sHBBIQQI")
CODECS = {"none": 0, "zlib": 1, "lzma": 2}
DEFAULT_CODEC = "zlib"  # measured: lzma is 2-10 % smaller but 5-25x slower (over budget per slider move)
DEFAULT_MAX_BYTES = 512 * 2**20
MAX_HEADER_BYTES = 16 * 2**20  # ResNet-56's header is ~50 kB
SIZE_METHOD = "PruneScope artefact file (.psz)"
ATTR_MODULES = {"PadShortcut": ("in_planes", "out_planes")}  # parameter-free modules pruning resizes
DTYPES = {"float32": "<f4", "float16": "<f2", "float64": "<f8", "int8": "i1", "uint8": "u1", "int16": "<i2",
          "int32": "<i4", "int64": "<i8", "bool": "?"}
LAYOUTS = ("dense", "bitmask", "index8", "index16")
_MAX_DIM = 2**31
_MAX_NAME = 256


class ArtifactError(ValueError):
                    """A file that is not a valid PruneScope artefact (the message says what and which file)."""


@dataclass
class Loaded:
    """A model rebuilt from an artefact. For int8 artefacts ``float_model`` is the resized float
    architecture only: the file stores the int8 weights, not the float ones (``meta['float_weights']``)."""

    model: nn.Module
    float_model: nn.Module
    recipe: Recipe
    model_id: str
    kernels: str
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # rebuilt as weight != 0 (none for int8)
    qcodes: dict[str, QTensor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def to_compressed(self) -> Compressed:
        return Compressed(model=self.model, float_model=self.float_model, recipe=self.recipe, masks=self.masks,
                          qcodes=self.qcodes, kernels=self.kernels, simulated=list(self.meta.get("simulated", [])))


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


def _encode_q(name: str, weight: torch.Tensor, q: QTensor, chunks: list[bytes]) -> dict | None:
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


def _encode_raw(name: str, t: torch.Tensor, chunks: list[bytes], fp16: bool = False) -> dict:
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


def _channel_scatter(m: nn.Module) -> nn.Module:
    from .prune.structured import ChannelScatter

    return ChannelScatter(m.in_planes, m.out_planes)


# Module swaps that structured pruning makes, and how the loader redoes them on the base architecture.
SUBSTITUTES: dict[tuple[str, str], Callable[[nn.Module], nn.Module]] = {
    ("PadShortcut", "ChannelScatter"): _channel_scatter}


@lru_cache(maxsize=16)
def _base(model_id: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Fingerprint and (name, type) of every module of the unpruned architecture."""
    kinds = tuple((n, type(m).__name__) for n, m in models.build(model_id).named_modules())
    return hashlib.sha256(";".join(f"{n}:{t}" for n, t in kinds).encode()).hexdigest()[:16], kinds


def _replaced(fm: nn.Module, model_id: str) -> dict[str, str]:
    """Modules whose type differs from the base architecture's (only allowed swaps)."""
    base = _base(model_id)[1]
    kinds = tuple((n, type(m).__name__) for n, m in fm.named_modules())
    if [n for n, _ in kinds] != [n for n, _ in base]:
        raise ValueError(f"the compressed model's modules differ from {model_id}'s (added or removed); "
                         "the artefact format stores channel counts and known module swaps only")
    out = {}
    for (name, kind), (_, base_kind) in zip(kinds, base, strict=True):
        if kind != base_kind:
            if (base_kind, kind) not in SUBSTITUTES:
                raise ValueError(f"module {name!r} was changed from {base_kind} to {kind}, which the artefact "
                                 f"format cannot rebuild (known swaps: {sorted(SUBSTITUTES)})")
            out[name] = kind
    return out


def artifact_bytes(comp: Compressed, model_id: str, codec: str = DEFAULT_CODEC) -> bytes:
    """The whole artefact file for ``comp`` (a model of ``model_id``) as bytes."""
    fm = comp.float_model
    replaced = _replaced(fm, model_id)
    int8 = comp.kernels.startswith("int8")
    fp16 = {f"{n}.weight" for n, _ in prunable_layers(fm)} if comp.recipe.quant.bits == 16 else set()
    chunks: list[bytes] = []
    records = []
    for key, t in fm.state_dict().items():
        if int8 and t.is_floating_point():  # the int8 state holds the weights; keep index buffers
            records.append({"name": key, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
                            "store": "none"})
            continue
        q = comp.qcodes.get(key.removesuffix(".weight")) if key.endswith(".weight") and not int8 else None
        rec = _encode_q(key, t, q, chunks) if q is not None else None
        records.append(rec or _encode_raw(key, t, chunks, fp16=key in fp16))
    header = {"model_id": model_id, "arch": _base(model_id)[0], "recipe": comp.recipe.to_dict(),
              "kernels": comp.kernels, "replaced": replaced,
              "modules": {n: {a: int(getattr(m, a)) for a in ATTR_MODULES[type(m).__name__]}
                          for n, m in fm.named_modules() if type(m).__name__ in ATTR_MODULES},
              "masked": sorted(comp.masks), "tensors": records, "meta": _meta(comp)}
    if int8:
        from .int8 import int8_state

        header["int8_state"] = [_encode_int8(k, v, chunks) for k, v in int8_state(comp).items()]
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), default=str).encode()
    return assemble(text, b"".join(chunks), codec)


def _encode_int8(key: str, t: object, chunks: list[bytes]) -> dict:
    if not isinstance(t, torch.Tensor) or t.is_quantized:
        raise ValueError(f"int8_state entry {key!r} must be a plain tensor (int8 codes, fp32 scales); got {type(t)}")
    return _encode_raw(key, t, chunks)


def _meta(comp: Compressed) -> dict:
    total = nonzero = 0
    for p in comp.float_model.parameters():
        total, nonzero = total + p.numel(), nonzero + int(torch.count_nonzero(p))
    return {"simulated": [str(note) for note in comp.simulated], "params_total": total,
            "params_nonzero": nonzero, "float_weights": not comp.kernels.startswith("int8"),
            "writer": f"compress_core {__version__}"}


def assemble(header_json: bytes, data: bytes, codec: str = DEFAULT_CODEC) -> bytes:
    """Preamble + compressed (header JSON + data): the file format's outer layer."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    body = header_json + data
    if codec == "zlib":
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        stored = comp.compress(body) + comp.flush()
    elif codec == "lzma":
        stored = lzma.compress(body, preset=6)
    else:
        stored = body
    pre = PREAMBLE.pack(MAGIC, FORMAT_VERSION, CODECS[codec], 0, len(header_json), len(body), len(stored),
                        zlib.crc32(body))
    return pre + stored


def save_artifact(comp: Compressed, model_id: str, path: str | os.PathLike, codec: str = DEFAULT_CODEC) -> int:
    """Write the artefact atomically (temp file + rename); returns the bytes written."""
    data = artifact_bytes(comp, model_id, codec)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


# -- decoding ----------------------------------------------------------------------------------
def _read_source(source: str | os.PathLike | bytes, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        size = os.path.getsize(source)
        if size > max_bytes:
            raise ArtifactError(f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")
        data = Path(source).read_bytes()
    if len(data) > max_bytes:
        raise ArtifactError(f"file is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    return data


def _body(data: bytes, max_bytes: int) -> tuple[dict, memoryview]:
    if len(data) < PREAMBLE.size:
        raise ArtifactError(f"file is truncated or empty ({len(data)} bytes; an artefact has at least {PREAMBLE.size})")
    magic, version, codec, flags, header_len, body_len, stored_len, crc = PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise ArtifactError(f"not a PruneScope artefact (starts with {data[:8]!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"artefact format version {version} is not supported (this reader knows {FORMAT_VERSION})")
    names = {v: k for k, v in CODECS.items()}
    if codec not in names or flags != 0:
        raise ArtifactError(f"unknown codec {codec} or flags {flags} in the preamble")
    if PREAMBLE.size + stored_len != len(data):
        raise ArtifactError(f"file is truncated or has trailing bytes: the preamble announces "
                            f"{PREAMBLE.size + stored_len:,} bytes, the file has {len(data):,}")
    if body_len > max_bytes or header_len > min(body_len, MAX_HEADER_BYTES):
        raise ArtifactError(f"preamble announces a {body_len:,}-byte body with a {header_len:,}-byte header "
                            f"(limit {max_bytes:,})")
    body = _decompress(names[codec], memoryview(data)[PREAMBLE.size:], body_len)
    if zlib.crc32(body) != crc:
        raise ArtifactError("checksum mismatch: the file is corrupted")
    try:
        header = json.loads(bytes(body[:header_len]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ArtifactError("header is not a JSON object")
    return header, memoryview(body)[header_len:]


def _decompress(codec: str, stored: memoryview, size: int) -> bytes:
    try:
        if codec == "none":
            out, rest = bytes(stored), b""
        elif codec == "zlib":
            d = zlib.decompressobj(-15)
            out = d.decompress(stored, size)
            rest = d.unconsumed_tail + d.unused_data + (b"" if d.eof else b"?")
        else:
            d = lzma.LZMADecompressor()
            out = d.decompress(stored, size)
            rest = d.unused_data + (b"" if d.eof else b"?")
    except (zlib.error, lzma.LZMAError) as exc:
        raise ArtifactError(f"compressed body is corrupted ({exc})") from None
    if len(out) != size or rest:
        raise ArtifactError(f"compressed body does not decode to the announced {size:,} bytes (truncated or corrupted)")
    return out


def read_header(source: str | os.PathLike | bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The JSON header of an artefact (for inspection; records show each tensor's layout)."""
    try:
        return _body(_read_source(source, max_bytes), max_bytes)[0]
    except ArtifactError as exc:
        raise ArtifactError(f"{_where(source)}: {exc}") from None


def _where(source: object) -> str:
    return "artefact bytes" if isinstance(source, (bytes, bytearray, memoryview)) else f"artefact {source}"


def _get(d: dict, key: str, kind: type | tuple, where: str):
    value = d.get(key) if isinstance(d, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(f"{where}: field {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def _shape(rec: dict, where: str) -> tuple[int, ...]:
    shape = _get(rec, "shape", list, where)
    if len(shape) > 8 or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < _MAX_DIM for d in shape):
        raise ArtifactError(f"{where}: bad shape {shape!r}")
    return tuple(shape)


class _Reader:
    """Sequential, bounds-checked access to the tensor data."""

    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def take(self, rec: dict, part: str, expected: int | None, where: str) -> memoryview:
        sizes = _get(rec, "bytes", dict, where)
        n = sizes.get(part, 0)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or (expected is not None and n != expected):
            raise ArtifactError(f"{where}: chunk {part!r} has {n!r} bytes, expected {expected}")
        if self.pos + n > len(self.data):
            raise ArtifactError(f"{where}: chunk {part!r} runs past the end of the data "
                                f"({self.pos + n:,} > {len(self.data):,} bytes)")
        self.pos += n
        return self.data[self.pos - n:self.pos]


def _positions(rd: _Reader, rec: dict, layout: str, n: int, nnz: int, where: str) -> np.ndarray | None:
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


def _decode(rd: _Reader, rec: dict, where: str) -> tuple[torch.Tensor, QTensor | None]:
    shape = _shape(rec, where)
    n = math.prod(shape)
    layout, store = _get(rec, "layout", str, where), _get(rec, "store", str, where)
    nnz = _get(rec, "nnz", int, where)
    if layout not in LAYOUTS or not 0 <= nnz <= n:
        raise ArtifactError(f"{where}: bad layout {layout!r} or non-zero count {nnz}")
    idx = _positions(rd, rec, layout, n, nnz, where)
    m = n if idx is None else nnz
    if store == "q":
        return _decode_q(rd, rec, shape, idx, m, where)
    if store not in DTYPES:
        raise ArtifactError(f"{where}: unknown value storage {store!r}")
    dtype = np.dtype(DTYPES[store])
    values = _unshuffle(rd.take(rec, "val", m * dtype.itemsize, where), dtype, m)
    full = values if idx is None else np.zeros(n, dtype)
    if idx is not None:
        full[idx] = values
    native = np.dtype(DTYPES[_get(rec, "dtype", str, where)]).newbyteorder("=")
    return torch.from_numpy(full.astype(native)).reshape(shape), None


def _decode_q(rd: _Reader, rec: dict, shape: tuple[int, ...], idx: np.ndarray | None, m: int,
              where: str) -> tuple[torch.Tensor, QTensor]:
    q = _get(rec, "q", dict, where)
    bits, step, offset = _get(q, "bits", int, where), _get(q, "step", int, where), _get(q, "offset", int, where)
    axis = q.get("axis")
    if not 1 <= bits <= 8 or step not in (1, 2) or not -256 <= offset <= 256 or axis not in (0, None) \
            or (axis == 0 and not shape) or rec.get("dtype") != "float32":
        raise ArtifactError(f"{where}: bad quantization parameters {q!r}")
    n = math.prod(shape)
    channels = shape[0] if axis == 0 else 1
    u = unpack_bits(rd.take(rec, "val", (m * bits + 7) // 8, where), bits, m)
    scale = _unshuffle(rd.take(rec, "scale", 4 * channels, where), np.dtype("<f4"), channels)
    has_zp = "zp" in _get(rec, "bytes", dict, where)
    zp = _unshuffle(rd.take(rec, "zp", 4 * channels, where), np.dtype("<i4"), channels) if has_zp \
        else np.zeros(channels, np.int32)
    kept = u.astype(np.int32) * step + offset
    codes = kept if idx is None else np.repeat(zp, n // channels if channels else 0).astype(np.int32)
    if idx is not None:
        codes[idx] = kept
    per_shape = (channels,) if axis == 0 else ()
    qt = QTensor(torch.from_numpy(codes).reshape(shape), torch.from_numpy(scale.astype(np.float32).reshape(per_shape)),
                 torch.from_numpy(zp.astype(np.int32).reshape(per_shape)), bits, axis)
    return qt.dequantize(), qt


def _resize_(model: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
    """Give every parameter/buffer its stored shape and sync Conv/Linear/BatchNorm sizes."""
    with torch.no_grad():
        for key, shape in shapes.items():
            mod_name, _, attr = key.rpartition(".")
            module = model.get_submodule(mod_name)
            old = getattr(module, attr)
            if tuple(old.shape) != shape:
                new = torch.zeros(shape, dtype=old.dtype)
                setattr(module, attr, nn.Parameter(new, old.requires_grad) if isinstance(old, nn.Parameter) else new)
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            module.out_channels = module.weight.shape[0]
            module.in_channels = module.weight.shape[1] * module.groups
        elif isinstance(module, nn.Linear):
            module.out_features, module.in_features = module.weight.shape
        elif isinstance(module, nn.modules.batchnorm._NormBase):
            ref = module.running_mean if module.running_mean is not None else module.weight
            if ref is not None:
                module.num_features = ref.shape[0]


def _architecture(model_id: str, header: dict) -> nn.Module:
    """The base architecture with the stored module swaps and shortcut planes (tensors not yet resized)."""
    model = models.build(model_id).eval()
    if header.get("arch") != _base(model_id)[0]:
        raise ArtifactError(f"the stored architecture of {model_id} differs from this version's (fingerprint "
                            f"{str(header.get('arch'))[:20]!r} != {_base(model_id)[0]!r})")
    modules = dict(model.named_modules())
    for name, kind in _get(header, "replaced", dict, "header").items():
        swap = SUBSTITUTES.get((type(modules.get(name)).__name__, kind)) if name else None
        if swap is None:
            raise ArtifactError(f"module {str(name)[:80]!r} cannot be replaced by {str(kind)[:40]!r}")
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, swap(modules[name]))
    modules = dict(model.named_modules())
    for name, values in _get(header, "modules", dict, "header").items():
        allowed = ATTR_MODULES.get(type(modules.get(name)).__name__, ())
        if not allowed or not isinstance(values, dict) or set(values) != set(allowed):
            raise ArtifactError(f"module record {str(name)[:80]!r} does not fit the architecture")
        for attr, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1 << 20:
                raise ArtifactError(f"module {name!r}: bad {attr} {value!r}")
            setattr(modules[name], attr, value)
    return model


def _check_records(records: object, base: dict | None, max_bytes: int, what: str) -> list[dict]:
    if not isinstance(records, list):
        raise ArtifactError(f"{what} is not a list")
    total = 0
    names = set()
    for i, rec in enumerate(records):
        where = f"{what}[{i}]"
        name = _get(rec, "name", str, where)
        shape = _shape(rec, f"{where} {name!r}")
        dtype = _get(rec, "dtype", str, where)
        if name in names or len(name) > _MAX_NAME or dtype not in DTYPES:
            raise ArtifactError(f"{where}: duplicate or bad name {name[:80]!r} or dtype {dtype!r}")
        names.add(name)
        if base is not None:
            ref_shape, ref_dtype = base.get(name, ((), None))
            if ref_dtype is None or str(ref_dtype).removeprefix("torch.") != dtype or len(shape) != len(ref_shape) \
                    or any(d > r for d, r in zip(shape, ref_shape, strict=True)):
                raise ArtifactError(f"{where}: tensor {name!r} {dtype}{list(shape)} does not fit the architecture "
                                    f"({ref_dtype}{list(ref_shape)}; pruning only shrinks tensors)")
        total += math.prod(shape) * (8 if rec.get("store") == "q" else np.dtype(DTYPES[dtype]).itemsize)
        if total > max_bytes:
            raise ArtifactError(f"{where}: tensors would need more than {max_bytes:,} bytes of memory")
    if base is not None and [r["name"] for r in records] != list(base):
        raise ArtifactError(f"{what} do not match the architecture's state_dict keys")
    return records


def load_artifact(path: str | os.PathLike | bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Loaded:
    """Rebuild the compressed model stored at ``path``. Never unpickles; raises ArtifactError."""
    try:
        return _load(_read_source(path, max_bytes), max_bytes)
    except ArtifactError as exc:
        raise ArtifactError(f"cannot load {_where(path)}: {exc}") from None
    except (ValueError, RuntimeError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            MemoryError) as exc:
        raise ArtifactError(f"cannot load {_where(path)}: inconsistent contents "
                            f"({type(exc).__name__}: {exc})") from None


def _load(data: bytes, max_bytes: int) -> Loaded:
    header, tensor_data = _body(data, max_bytes)
    model_id = _get(header, "model_id", str, "header")
    try:
        spec = models.get_spec(model_id)
        recipe = Recipe.from_dict(header.get("recipe"))
    except ValueError as exc:
        raise ArtifactError(f"header: {exc}") from None
    kernels = _get(header, "kernels", str, "header")
    if len(kernels) > 40:
        raise ArtifactError(f"bad kernels {kernels[:40]!r}")
    int8 = kernels.startswith("int8")
    model = _architecture(model_id, header)
    base_state = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    records = _check_records(header.get("tensors"), base_state, max_bytes, "tensors")
    int8_records = _check_records(header.get("int8_state"), None, max_bytes, "int8_state") if int8 else []
    masked = _get(header, "masked", list, "header")
    meta = _get(header, "meta", dict, "header")
    notes = meta.get("simulated", [])
    if not isinstance(notes, list) or not all(isinstance(x, str) for x in notes):
        raise ArtifactError("header: meta.simulated must be a list of strings")

    _resize_(model, {r["name"]: tuple(r["shape"]) for r in records})
    state, qcodes = model.state_dict(), {}
    rd = _Reader(tensor_data)
    for rec in records:
        if rec.get("store") == "none" and int8 and rec["dtype"] in ("float32", "float16", "float64"):
            continue  # float weights of an int8 model: the int8 state holds them
        state[rec["name"]], qt = _decode(rd, rec, f"tensor {rec['name']!r}")
        if qt is not None:
            qcodes[rec["name"].removesuffix(".weight")] = qt
    int8_state = {rec["name"]: _decode(rd, rec, f"int8 tensor {rec['name']!r}")[0] for rec in int8_records}
    if rd.pos != len(tensor_data):
        raise ArtifactError(f"{len(tensor_data) - rd.pos:,} bytes of tensor data are not described by the header")
    model.load_state_dict(state, strict=True)
    masks = {}
    for name in masked:
        if not isinstance(name, str) or f"{name}.weight" not in state:
            raise ArtifactError(f"masked layer {str(name)[:80]!r} is not a layer with weights")
        if not int8:
            masks[name] = state[f"{name}.weight"] != 0
    float_model = model
    if int8:
        model = _rebuild_int8(float_model, kernels, spec.input_shape, int8_state)
    _smoke_test(model, spec.input_shape)
    return Loaded(model=model.eval(), float_model=float_model, recipe=recipe, model_id=model_id, kernels=kernels,
                  masks=masks, qcodes=qcodes, meta=meta)


def _rebuild_int8(float_model: nn.Module, kernels: str, input_shape: tuple[int, ...],
                  state: dict[str, torch.Tensor]) -> nn.Module:
    try:
        from .int8 import rebuild_int8
    except ImportError:
        raise ArtifactError(f"this artefact runs on {kernels} kernels, which need compress_core.int8 "
                            "(not available)") from None
    mode = "dynamic" if "dynamic" in kernels else "static"
    return rebuild_int8(copy.deepcopy(float_model), mode, input_shape, state)


def _smoke_test(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise ArtifactError(f"the rebuilt model does not run on a {list(input_shape)} input: {exc}") from None


# -- measuring a saved file --------------------------------------------------------------------
class _FileWorkbench(Workbench):
    """A Workbench whose size is the artefact file's size on disk."""

    def __init__(self, model_id: str, file_size_bytes: int) -> None:
        super().__init__(model_id)
        self.file_size_bytes = file_size_bytes

    def size_of(self, comp: Compressed) -> tuple[int, str]:
        return self.file_size_bytes, SIZE_METHOD


def evaluate_artifact(path: str | os.PathLike, mode: str = "quick", latency_batch: int = 1,
                      latency_budget_s: float = 1.0, measure_latency: bool = True) -> Result:
    """Load the file and measure the loaded model (accuracy vs the dense model, size on disk, latency)."""
    loaded = load_artifact(path)
    wb = _FileWorkbench(loaded.model_id, os.path.getsize(path))
    result = wb.evaluate(loaded.recipe, mode=mode, latency_batch=latency_batch, latency_budget_s=latency_budget_s,
                         measure_latency=measure_latency, compressed=loaded.to_compressed())
    if not loaded.meta.get("float_weights", True) and isinstance(loaded.meta.get("params_nonzero"), int):
        result = replace(result, params_nonzero=loaded.meta["params_nonzero"],
                         simulated=result.simulated + ["non-zero parameter count recorded when the file was saved"])
    return result
