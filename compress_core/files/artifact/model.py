"""A compressed model <-> an artefact file: ``artifact_bytes``/``save_artifact`` and ``load_artifact``.

Writing turns a ``records.Compressed`` into tensor records (``codec``) and a header, and assembles
the file (``container``). Loading checks the header against the architecture (``architecture``),
decodes every tensor, rebuilds the pruned architecture from the stored skeleton, loads the state,
rebuilds int8 kernels where the file has them (``compress_core.engine.int8``) and runs one forward pass.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np
import torch
from torch import nn

from compress_core import __version__, models
from compress_core.base.recipe import Recipe
from compress_core.base.records import Compressed
from compress_core.engine.int8 import int8_state, rebuild_int8
from compress_core.engine.prune.layers import prunable_layers
from compress_core.engine.quantize import QTensor
from compress_core.files.artifact.architecture import (
    fingerprint,
    rebuild_,
    reference,
    shortcut_planes,
    stored_skeleton,
    swaps,
)
from compress_core.files.artifact.codec import DTYPES, encode_codebook, encode_q, encode_raw
from compress_core.files.artifact.container import (
    DEFAULT_CODEC,
    DEFAULT_MAX_BYTES,
    Source,
    assemble,
    encode_header,
    open_body,
    read_source,
    where,
    write_atomically,
)
from compress_core.files.artifact.decoding import Reader, decode
from compress_core.files.artifact.errors import ArtifactError, field, shape

MAX_NAME = 256
FLOAT_DTYPES = ("float32", "float16", "float64")


@dataclass
class Loaded:
    """A model rebuilt from an artefact. For int8 artefacts ``float_model`` is the resized float
    architecture only: the file stores the int8 weights, not the float ones (``meta['float_weights']``)."""

    model: nn.Module
    float_model: nn.Module
    recipe: Recipe
    model_id: str
    kernels: str
    masks: dict[str, torch.Tensor] = dataclass_field(default_factory=dict)  # rebuilt as weight != 0 (none for int8)
    qcodes: dict[str, QTensor] = dataclass_field(default_factory=dict)
    meta: dict = dataclass_field(default_factory=dict)

    def to_compressed(self) -> Compressed:
        return Compressed(
            model=self.model,
            float_model=self.float_model,
            recipe=self.recipe,
            masks=self.masks,
            qcodes=self.qcodes,
            kernels=self.kernels,
            simulated=list(self.meta.get("simulated", [])),
        )


# -- writing -----------------------------------------------------------------------------------
def artifact_bytes(comp: Compressed, model_id: str, codec: str = DEFAULT_CODEC, entropy: bool = True) -> bytes:
    """The whole artefact file for ``comp`` (a model of ``model_id``) as bytes. ``entropy``: Huffman-code
    the indices of k-means layers where that is smaller (False: always bit-packed). Each tensor picks
    Huffman where its own chunks deflate smaller; since neighbouring chunks share deflate's blocks, the
    file is then compared with the all-packed one and the smaller kept: entropy coding never grows a file."""
    coded, huffman = _file(comp, model_id, codec, entropy)
    if not huffman:
        return coded
    packed, _ = _file(comp, model_id, codec, False)
    return coded if len(coded) < len(packed) else packed


def _file(comp: Compressed, model_id: str, codec: str, entropy: bool) -> tuple[bytes, bool]:
    """(the file, whether any tensor's indices are Huffman-coded)."""
    fm = comp.float_model
    replaced = swaps(fm, model_id)
    int8 = comp.kernels.startswith("int8")
    chunks: list[bytes] = []
    records = _tensor_records(comp, int8, chunks, entropy)
    header = {
        "model_id": model_id,
        "arch": fingerprint(model_id),
        "recipe": comp.recipe.to_dict(),
        "kernels": comp.kernels,
        "replaced": replaced,
        "modules": shortcut_planes(fm),
        "masked": sorted(comp.masks),
        "tensors": records,
        "meta": _meta(comp),
    }
    if int8:
        header["int8_state"] = [_encode_int8(k, v, chunks) for k, v in int8_state(comp).items()]
    huffman = any(r.get("q", {}).get("coding") == "huffman" for r in records)
    return assemble(encode_header(header), b"".join(chunks), codec), huffman


def _tensor_records(comp: Compressed, int8: bool, chunks: list[bytes], entropy: bool = True) -> list[dict]:
    """One record per entry of the float model's state_dict (k-bit codes or codebooks where exact)."""
    fm = comp.float_model
    spec = comp.recipe.quant
    layers = [n for n, _ in prunable_layers(fm)]  # per layer: QuantSpec.layer_bits may set its own bits
    fp16 = {f"{n}.weight" for n in layers if spec.bits_of(n) == 16}
    if spec.scheme == "kmeans":  # k-means recipes round biases to fp16 (quantize_weights_)
        fp16 |= {f"{n}.bias" for n in layers if spec.bits_of(n) <= 8}
    records = []
    for key, t in fm.state_dict().items():
        if int8 and t.is_floating_point():  # the int8 state holds the weights; keep index buffers
            records.append(
                {"name": key, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "store": "none"}
            )
            continue
        q = comp.qcodes.get(key.removesuffix(".weight")) if key.endswith(".weight") and not int8 else None
        rec = (
            None
            if q is None
            else encode_codebook(key, t, q, chunks, entropy)
            if q.codebook is not None
            else encode_q(key, t, q, chunks)
        )
        records.append(rec or encode_raw(key, t, chunks, fp16=key in fp16))
    return records


def _encode_int8(key: str, t: object, chunks: list[bytes]) -> dict:
    if not isinstance(t, torch.Tensor) or t.is_quantized:
        raise ValueError(f"int8_state entry {key!r} must be a plain tensor (int8 codes, fp32 scales); got {type(t)}")
    return encode_raw(key, t, chunks)


def _meta(comp: Compressed) -> dict:
    total = nonzero = 0
    for p in comp.float_model.parameters():
        total, nonzero = total + p.numel(), nonzero + int(torch.count_nonzero(p))
    return {
        "simulated": [str(note) for note in comp.simulated],
        "params_total": total,
        "params_nonzero": nonzero,
        "float_weights": not comp.kernels.startswith("int8"),
        "writer": f"compress_core {__version__}",
    }


def save_artifact(
    comp: Compressed, model_id: str, path: str | os.PathLike, codec: str = DEFAULT_CODEC, entropy: bool = True
) -> int:
    """Write the artefact atomically (temp file + rename); returns the bytes written."""
    return write_atomically(path, artifact_bytes(comp, model_id, codec, entropy))


# -- loading -----------------------------------------------------------------------------------
def load_artifact(path: Source, max_bytes: int = DEFAULT_MAX_BYTES) -> Loaded:
    """Rebuild the compressed model stored at ``path``. Never unpickles; raises ArtifactError."""
    try:
        return _load(read_source(path, max_bytes), max_bytes)
    except ArtifactError as exc:
        raise ArtifactError(f"cannot load {where(path)}: {exc}") from None
    except (
        ValueError,
        RuntimeError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        MemoryError,
    ) as exc:
        raise ArtifactError(f"cannot load {where(path)}: inconsistent contents ({type(exc).__name__}: {exc})") from None


def _load(data: bytes, max_bytes: int) -> Loaded:
    header, tensor_data = open_body(data, max_bytes)
    model_id = field(header, "model_id", str, "header")
    try:
        spec = models.get_spec(model_id)
        recipe = Recipe.from_dict(header.get("recipe"))
    except ValueError as exc:
        raise ArtifactError(f"header: {exc}") from None
    kernels = field(header, "kernels", str, "header")
    if len(kernels) > 40:
        raise ArtifactError(f"bad kernels {kernels[:40]!r}")
    int8 = kernels.startswith("int8")
    model, planes = reference(model_id, header)
    base_state = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    records = _check_records(header.get("tensors"), base_state, max_bytes, "tensors")
    int8_records = _check_records(header.get("int8_state"), None, max_bytes, "int8_state") if int8 else []
    masked = field(header, "masked", list, "header")
    meta = _check_meta(field(header, "meta", dict, "header"))

    state, qcodes, int8_tensors = _decode_all(tensor_data, records, int8_records, int8)
    shapes = {r["name"]: tuple(r["shape"]) for r in records}
    rebuild_(model, stored_skeleton(model, shapes, state, planes))
    _load_state_(model, shapes, state)
    masks = _masks(masked, model, int8)
    float_model = model
    if int8:
        mode = "dynamic" if "dynamic" in kernels else "static"
        model = rebuild_int8(copy.deepcopy(float_model), mode, spec.input_shape, int8_tensors)
    _smoke_test(model, spec.input_shape)
    return Loaded(
        model=model.eval(),
        float_model=float_model,
        recipe=recipe,
        model_id=model_id,
        kernels=kernels,
        masks=masks,
        qcodes=qcodes,
        meta=meta,
    )


def _check_records(records: object, base: dict | None, max_bytes: int, what: str) -> list[dict]:
    """The tensor records, each checked (name, shape, dtype) against ``base`` and a memory budget."""
    if not isinstance(records, list):
        raise ArtifactError(f"{what} is not a list")
    total = 0
    names = set()
    for i, rec in enumerate(records):
        where_ = f"{what}[{i}]"
        name = field(rec, "name", str, where_)
        dims = shape(rec, f"{where_} {name!r}")
        dtype = field(rec, "dtype", str, where_)
        if name in names or len(name) > MAX_NAME or dtype not in DTYPES:
            raise ArtifactError(f"{where_}: duplicate or bad name {name[:80]!r} or dtype {dtype!r}")
        names.add(name)
        if base is not None:
            ref_shape, ref_dtype = base.get(name, ((), None))
            if (
                ref_dtype is None
                or str(ref_dtype).removeprefix("torch.") != dtype
                or len(dims) != len(ref_shape)
                or any(d > r for d, r in zip(dims, ref_shape, strict=True))
            ):
                raise ArtifactError(
                    f"{where_}: tensor {name!r} {dtype}{list(dims)} does not fit the architecture "
                    f"({ref_dtype}{list(ref_shape)}; pruning only shrinks tensors)"
                )
        total += math.prod(dims) * (8 if rec.get("store") in ("q", "codebook") else np.dtype(DTYPES[dtype]).itemsize)
        if total > max_bytes:
            raise ArtifactError(f"{where_}: tensors would need more than {max_bytes:,} bytes of memory")
    if base is not None and [r["name"] for r in records] != list(base):
        raise ArtifactError(f"{what} do not match the architecture's state_dict keys")
    return records


def _check_meta(meta: dict) -> dict:
    notes = meta.get("simulated", [])
    if not isinstance(notes, list) or not all(isinstance(x, str) for x in notes):
        raise ArtifactError("header: meta.simulated must be a list of strings")
    return meta


def _decode_all(
    tensor_data: memoryview, records: list[dict], int8_records: list[dict], int8: bool
) -> tuple[dict[str, torch.Tensor], dict[str, QTensor], dict[str, torch.Tensor]]:
    """(float model state, k-bit codes by layer, int8 state); every byte must belong to a record."""
    state, qcodes = {}, {}
    rd = Reader(tensor_data)
    for rec in records:
        if rec.get("store") == "none" and int8 and rec["dtype"] in FLOAT_DTYPES:
            continue  # float weights of an int8 model: the int8 state holds them
        state[rec["name"]], qt = decode(rd, rec, f"tensor {rec['name']!r}")
        if qt is not None:
            qcodes[rec["name"].removesuffix(".weight")] = qt
    int8_tensors = {rec["name"]: decode(rd, rec, f"int8 tensor {rec['name']!r}")[0] for rec in int8_records}
    if rd.pos != len(tensor_data):
        raise ArtifactError(f"{len(tensor_data) - rd.pos:,} bytes of tensor data are not described by the header")
    return state, qcodes, int8_tensors


def _load_state_(model: nn.Module, shapes: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]) -> None:
    """Load the decoded tensors into the rebuilt model (tensors not stored keep the rebuilt values)."""
    full = model.state_dict()
    for name, dims in shapes.items():
        if name not in full or tuple(full[name].shape) != dims:
            raise ArtifactError(
                f"tensor {name!r} {list(dims)} does not fit the architecture rebuilt from the stored shapes"
            )
    full.update(state)
    model.load_state_dict(full, strict=True)


def _masks(masked: list, model: nn.Module, int8: bool) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    masks = {}
    for name in masked:
        if not isinstance(name, str) or f"{name}.weight" not in state:
            raise ArtifactError(f"masked layer {str(name)[:80]!r} is not a layer with weights")
        if not int8:
            masks[name] = state[f"{name}.weight"] != 0
    return masks


def _smoke_test(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise ArtifactError(f"the rebuilt model does not run on a {list(input_shape)} input: {exc}") from None
