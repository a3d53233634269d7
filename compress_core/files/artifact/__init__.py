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
  bits, and for their biases under k-means; ``int8``, ``int64``, ...): raw little-endian values,
  byte-shuffled so the compressor sees the exponent bytes together; ``q``: k-bit codes (1..8 bits)
  bit-packed, ``code = u * step + offset``
  (``step`` 2 for 1-bit signs), fp32 ``scale`` and int32 ``zp`` per channel (``axis`` 0) or per
  tensor (no ``zp`` chunk: all zero); ``none``: a float tensor of an int8 model (shape only, the
  ``int8_state`` records hold its weights). Positions outside the layout hold 0 or the zero point.
  Weights are rebuilt with ``QTensor.dequantize``, so they are bit-identical.
- ``store`` ``codebook`` (k-means weight sharing): ``q = {bits, axis, codebook, coding}``; the layout
  marks the weights in a cluster (code >= 0; zeros are in none), ``val`` holds their k-bit indices,
  bit-packed (``coding`` ``packed``) or canonical-Huffman-coded (``huffman``: chunk ``lens`` holds one
  code length per index value, ``entropy``), ``cb`` the 2^bits shared values per tensor (axis null) or
  per output channel (axis 0), byte-shuffled ``float16`` when exact, else ``float32``. A writer picks
  Huffman per tensor where it deflates smaller, and keeps the all-packed file when that is smaller.
  Readers before this store refuse such files with "unknown value storage 'codebook'"; every file
  they could read is written and read exactly as before (same format version).
``-0.0`` (what masking leaves on negative weights) counts as zero and loads as ``+0.0``: equal
values, so ``torch.equal`` holds for weights and outputs. The loader never unpickles anything: it
parses JSON and raw bytes, checks every length, shape and dtype against the header, the file size
and the base architecture (pruning only shrinks tensors), and raises ``ArtifactError`` otherwise.

The package:
- ``errors``: ``ArtifactError`` and checked access to header fields;
- ``codec``: one tensor -> one record and its chunks (layouts, k-bit codes, codebooks), and the record's values;
- ``decoding``: one record -> one tensor, every length checked;
- ``bits``: pure numpy below the record (bit packing, gap tokens of positions, byte shuffle);
- ``entropy``: canonical Huffman coding of k-means indices (pure numpy);
- ``container``: preamble, codecs, header JSON, reading with every length checked, atomic writes;
- ``architecture``: the stored architecture (fingerprint, module swaps, PadShortcut planes) and its
  rebuild through ``prune.skeleton`` (the skeleton is derived from the stored tensors);
- ``model``: ``artifact_bytes``/``save_artifact``/``load_artifact`` (a ``records.Compressed`` in, a
  ``Loaded`` out). Measuring a saved file is ``compress_core.bench.saved.evaluate_artifact``.
"""

from compress_core.base.records import SIZE_ARTIFACT
from compress_core.files.artifact.bits import index_positions, index_tokens, pack_bits, unpack_bits
from compress_core.files.artifact.codec import DTYPES, LAYOUTS
from compress_core.files.artifact.container import (
    CODECS,
    DEFAULT_CODEC,
    DEFAULT_MAX_BYTES,
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER_BYTES,
    PREAMBLE,
    assemble,
    read_header,
)
from compress_core.files.artifact.errors import ArtifactError
from compress_core.files.artifact.model import Loaded, artifact_bytes, load_artifact, save_artifact

SIZE_METHOD = SIZE_ARTIFACT  # how a Result's size_bytes was measured when it is this file's length

__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
    "DEFAULT_MAX_BYTES",
    "DTYPES",
    "FORMAT_VERSION",
    "LAYOUTS",
    "MAGIC",
    "MAX_HEADER_BYTES",
    "PREAMBLE",
    "SIZE_METHOD",
    "ArtifactError",
    "Loaded",
    "artifact_bytes",
    "assemble",
    "index_positions",
    "index_tokens",
    "load_artifact",
    "pack_bits",
    "read_header",
    "save_artifact",
    "unpack_bits",
]
