"""Canonical Huffman coding of small-alphabet symbols (k-means indices), pure numpy.

``huffman_lengths(counts)`` gives each symbol's code length (0 = unused), at most ``MAX_LEN`` bits
(if the optimal code is longer, the counts are halved until it fits: deterministic, slightly
suboptimal only for extremely skewed counts). The code itself is canonical (codes assigned in order
of (length, symbol)), so a file stores the lengths only: one byte per symbol of the alphabet.

``huffman_encode(symbols, lengths)`` writes the codes MSB-first, packed into bytes with zero
padding; ``huffman_decode(stream, lengths, count)`` reads exactly ``count`` symbols back and raises
``ArtifactError`` on anything a valid stream cannot contain (a length table that breaks the Kraft
inequality, a bit pattern that is no code, a stream longer or shorter than its symbols need, padding
that is not zero), so a stream that decodes re-encodes to the same bytes.
Decoding looks every bit position up in a 2^MAX_LEN table (numpy, a block of positions at a time)
and then follows the code boundaries in one pass over the symbols.
"""

from __future__ import annotations

import heapq

import numpy as np

from compress_core.files.artifact.errors import ArtifactError

MAX_LEN = 15  # longest code: keeps the decoding table at 2^15 entries
BLOCK = 1 << 16  # symbols (encoding) or bit positions (decoding) handled at once: bounds the memory


def huffman_lengths(counts: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Code length per symbol (uint8; 0 for symbols that never occur), at most ``max_len``."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), np.uint8)
    used = np.flatnonzero(counts)
    if len(used) == 1:
        lengths[used] = 1
    if len(used) <= 1:
        return lengths
    work = counts.copy()
    while True:
        depth = _tree_depths(work, used)
        if depth.max() <= max_len:
            lengths[used] = depth
            return lengths
        work[used] = np.maximum(1, work[used] // 2)  # flatten the distribution until the code fits


def _tree_depths(counts: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Depth of each used symbol in a Huffman tree (ties broken by creation order: deterministic)."""
    heap = [(int(counts[s]), i, [i]) for i, s in enumerate(used)]
    heapq.heapify(heap)
    depth = np.zeros(len(used), np.int64)
    order = len(used)
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        depth[a + b] += 1
        heapq.heappush(heap, (c1 + c2, order, a + b))
        order += 1
    return depth


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code (int64) of every symbol with a non-zero length (0 for the others)."""
    codes = np.zeros(len(lengths), np.int64)
    code, prev = 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        codes[s], prev = code, int(lengths[s])
        code += 1
    return codes


def check_lengths(lengths: np.ndarray, where: str) -> None:
    """A length table a canonical Huffman code can have (Kraft sum <= 1, lengths <= MAX_LEN)."""
    if lengths.max(initial=0) > MAX_LEN:
        raise ArtifactError(f"{where}: Huffman code lengths over {MAX_LEN} bits")
    if sum(2.0 ** -int(n) for n in lengths if n) > 1.0:
        raise ArtifactError(f"{where}: Huffman code lengths break the Kraft inequality (not a prefix code)")


def huffman_encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """The symbols' codes, MSB first, packed into bytes (zero padding at the end)."""
    if len(symbols) == 0:
        return b""
    codes = canonical_codes(lengths)
    sym = np.asarray(symbols, dtype=np.int64)
    width = int(lengths.max())
    j = np.arange(width)
    parts = []
    for lo in range(0, len(sym), BLOCK):  # in blocks: the bit matrix is symbols x width
        n_bits, value = lengths[sym[lo : lo + BLOCK]].astype(np.int64), codes[sym[lo : lo + BLOCK]]
        shift = n_bits[:, None] - 1 - j[None, :]  # bit j of a code of length L is bit L-1-j of its value
        parts.append((((value[:, None] >> np.maximum(shift, 0)) & 1)[shift >= 0]).astype(np.uint8))
    return np.packbits(np.concatenate(parts)).tobytes()


def huffman_decode(stream: bytes | memoryview, lengths: np.ndarray, count: int, where: str) -> np.ndarray:
    """``count`` symbols (uint8) from ``stream``; every byte must be needed (at most 7 padding bits)."""
    lengths = np.asarray(lengths, dtype=np.uint8)
    check_lengths(lengths, where)
    raw = np.frombuffer(stream, np.uint8)
    if count == 0:
        if len(raw):
            raise ArtifactError(f"{where}: Huffman stream of {len(raw)} bytes for no symbols")
        return np.zeros(0, np.uint8)
    width = int(lengths.max(initial=0))
    if width == 0 or len(raw) * 8 < count or len(raw) > (count * width + 7) // 8:
        raise ArtifactError(f"{where}: a Huffman stream of {len(raw)} bytes cannot hold {count} symbols")
    sym_tab, len_tab = _decode_table(lengths, width)
    total = len(raw) * 8
    bits = np.concatenate([np.unpackbits(raw), np.zeros(width, np.uint8)]).astype(np.uint16)
    out = np.empty(count, np.uint8)
    done = pos = 0
    for lo in range(0, total, BLOCK):  # in blocks of bit positions: the lookups are one per position
        hi = min(lo + BLOCK, total)
        window: np.ndarray = np.zeros(hi - lo, np.uint16)
        for j in range(width):
            window = (window << 1) | bits[lo + j : hi + j]
        step, starts = len_tab[window].tolist(), list[int]()
        while pos < hi and done + len(starts) < count:
            if not step[pos - lo]:
                raise ArtifactError(f"{where}: Huffman stream is corrupted (no code at bit {pos})")
            starts.append(pos - lo)
            pos += step[pos - lo]
        out[done : done + len(starts)] = sym_tab[window[starts]]
        done += len(starts)
        if done == count:
            break
    if done < count or pos > total or (total - pos) >= 8 or bits[pos:total].any():
        raise ArtifactError(f"{where}: Huffman stream of {len(raw)} bytes does not end with its {count} symbols")
    return out


def _decode_table(lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(symbol, code length) for every ``width``-bit window; length 0 where no code starts."""
    codes = canonical_codes(lengths)
    sym_tab = np.zeros(1 << width, np.uint8)
    len_tab = np.zeros(1 << width, np.uint8)
    for s in np.flatnonzero(lengths):
        n = int(lengths[s])
        lo = int(codes[s]) << (width - n)
        sym_tab[lo : lo + (1 << (width - n))] = s
        len_tab[lo : lo + (1 << (width - n))] = n
    return sym_tab, len_tab
