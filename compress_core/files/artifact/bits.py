"""Pure numpy below the record level of the artefact's tensor data: k-bit codes bit-packed (``pack_bits`` /
``unpack_bits``), sorted non-zero positions as gap tokens (``index_tokens`` / ``index_positions``, with
``token_count`` to price them before building them) and the byte shuffle that puts exponent bytes together."""

from __future__ import annotations

import numpy as np


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


def token_count(idx: np.ndarray, width: int) -> int:
    return len(idx) + int(((np.diff(idx, prepend=-1) - 1) // ((1 << width) - 1)).sum())


def shuffle(values: np.ndarray) -> bytes:
    """Byte-shuffle (all first bytes, then all second bytes, ...): exponents compress together."""
    size = values.dtype.itemsize
    raw = np.ascontiguousarray(values).view(np.uint8)
    return raw.tobytes() if size == 1 else raw.reshape(-1, size).T.tobytes()


def unshuffle(buf: memoryview, dtype: np.dtype, count: int) -> np.ndarray:
    raw = np.frombuffer(buf, np.uint8)
    if dtype.itemsize == 1:
        return raw.view(dtype).copy()
    return raw.reshape(dtype.itemsize, count).T.copy().view(dtype).reshape(count)
