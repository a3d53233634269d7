"""Bring your own model: load a user's file into a runnable ``nn.Module``, or refuse with a clear reason.

Accepted (checked by extension *and* content):
- ``.safetensors``: a state_dict. The format is a JSON header plus raw tensor bytes: no code.
- ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt``: a ``torch.save``'d state_dict (or a checkpoint dict holding
  one under ``state_dict``/``model``/...), loaded ONLY with ``torch.load(weights_only=True)``,
  whose unpickler accepts tensors and plain containers and refuses every other pickle global.
  The same extensions also take a TorchScript archive (``torch.jit.save``).
- ``.pt2``: a ``torch.export`` program (``torch.export.save``).

A state_dict needs an architecture from the model zoo: ``arch`` or, when ``None``, the one
architecture whose parameter names and shapes it matches exactly. A state_dict saved while
``torch.nn.utils.prune`` hooks were attached (``X_orig`` and ``X_mask`` instead of ``X``) is folded
first, exactly as ``prune.remove`` would (``prune_masks``), and ``Uploaded.prune_sparsity`` holds each
folded tensor's measured sparsity. TorchScript and torch.export models whose weights match a zoo
architecture, *and* whose outputs on a random input equal that architecture's, are converted to the
eager module so they can be pruned and quantized; others run as uploaded (measurable, not
compressible: see ``prunable``).

Modules: ``reading`` (size limits, sniffing, zip safety, the two tensor readers), ``state_dict``
(unwrapping, finiteness, fitting a zoo architecture), ``prune_masks`` (``torch.nn.utils.prune``
checkpoints), ``graphs`` (TorchScript and torch.export checks, ``ExportedGraph``); this module is the
entry point (``load_upload``) and turns an upload into a ``ModelSpec``.

Safety (torch 2.14, checked by hand; tests/core/files/uploads/test_uploads.py holds the attacks):
- ``torch.jit.load`` runs an archive's ``__setstate__`` and TorchScript ops include file I/O: such
  archives and graphs are refused before they run (``graphs``).
- ``torch.export.load`` is not safe on untrusted files: it falls back to
  ``torch.load(weights_only=False)`` for pickled weights, constants and sample inputs,
  ``pickle.loads`` opaque objects, resolves node targets by ``getattr`` from ``torch`` (e.g.
  ``torch.os.system``), ``sympify``s (``eval``s) shape expressions and ``exec``s guard code. So a
  ``.pt2`` is checked entry by entry first (``graphs``); only then is ``torch.export.load`` called.
- Residual risk: the C++ readers (zip, TorchScript) are not hardened against malicious input
  and have had memory-safety bugs; serve uploads only to users you would let run code.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from compress_core.files.uploads.errors import PICKLE_REFUSED, UploadError
from compress_core.files.uploads.graphs import (
    FILE_OPS,
    SCRIPT_NAMESPACES,
    ExportedGraph,
    as_eager,
    load_export,
    load_torchscript,
)
from compress_core.files.uploads.prune_masks import describe_sparsity, fold_prune_masks
from compress_core.files.uploads.reading import (
    MAX_UPLOAD_BYTES,
    MAX_ZIP_ENTRIES,
    MAX_ZIP_RATIO,
    load_safetensors,
    load_torch_save,
    members,
    not_a_model,
    open_zip,
    read_bytes,
    sniff,
)
from compress_core.files.uploads.state_dict import WRAPPER_KEYS, check_finite, fit, unwrap_state_dict, zoo_spec
from compress_core.models import REGISTRY, ModelSpec

__all__ = [
    "ACCEPTED_SUFFIXES",
    "FILE_OPS",
    "MAX_UPLOAD_BYTES",
    "MAX_ZIP_ENTRIES",
    "MAX_ZIP_RATIO",
    "PICKLE_REFUSED",
    "SCRIPT_NAMESPACES",
    "STATE_DICT_SUFFIXES",
    "WRAPPER_KEYS",
    "ExportedGraph",
    "UploadError",
    "Uploaded",
    "check_finite",
    "dataset_base",
    "fold_prune_masks",
    "load_upload",
    "prunable",
    "spec_for_upload",
    "upload_spec",
]

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
ACCEPTED_SUFFIXES = (".safetensors", ".pt2", *STATE_DICT_SUFFIXES)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


@dataclass
class Uploaded:
    model: nn.Module  # eval mode
    kind: str  # "state_dict" | "torchscript" | "torch.export"
    arch: str | None  # zoo architecture the weights were matched to
    input_shape: tuple[int, ...] | None  # one sample, CHW; None when the file does not say
    notes: list[str] = field(default_factory=list)
    filename: str = ""
    size_bytes: int = 0
    prune_sparsity: dict[str, float] = field(default_factory=dict)  # torch.nn.utils.prune masks folded: X -> zeros


@dataclass
class _Payload:
    """What a file held, before it becomes a model: a state_dict, or a graph with its weights."""

    kind: str
    state: dict[str, torch.Tensor]
    notes: list[str]
    opaque: nn.Module | None = None
    input_shape: tuple[int, ...] | None = None


# -- the entry point ---------------------------------------------------------------------------------
def load_upload(
    data: bytes | str | os.PathLike, filename: str, arch: str | None = None, max_bytes: int = MAX_UPLOAD_BYTES
) -> Uploaded:
    """Load an uploaded model file, or raise ``UploadError`` saying exactly why not (see module docstring)."""
    name = Path(filename).name or "the upload"
    try:
        return _load_upload(data, name, arch, max_bytes)
    except UploadError:
        raise
    except Exception as exc:  # a file no check foresaw: still one clear error, never a traceback
        raise UploadError(
            f"{name} could not be loaded ({type(exc).__name__}: "
            f"{(str(exc).strip().splitlines() or ['no detail'])[0][:200]})"
        ) from None


def _check_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UploadError(f"{name} is not an accepted format: plain Python pickles are refused. {PICKLE_REFUSED}")
    if suffix not in ACCEPTED_SUFFIXES:
        raise UploadError(
            f"{name} is not an accepted format ({suffix or 'no extension'}); upload one of "
            f"{', '.join(ACCEPTED_SUFFIXES)} (safetensors or torch.save state_dict, TorchScript, "
            "torch.export program)" + ("; ONNX files cannot be pruned here" if suffix == ".onnx" else "")
        )
    return suffix


def _read_payload(raw: bytes, name: str, suffix: str, max_bytes: int) -> _Payload:
    """Dispatch on extension and content to the reader that never runs the file's code."""
    fmt, notes = sniff(raw), list[str]()
    if suffix == ".safetensors" or (suffix in STATE_DICT_SUFFIXES and fmt == "safetensors"):
        if fmt != "safetensors":
            raise not_a_model(name, raw, "a safetensors file")
        return _Payload("state_dict", unwrap_state_dict(load_safetensors(raw, name), name, notes), notes)
    if fmt == "zip":
        zf = open_zip(raw, name, max_bytes)
        entries = members(zf)
        if suffix == ".pt2" or "archive_format" in entries:
            opaque, state, input_shape, notes = load_export(raw, zf, name)
            return _Payload("torch.export", state, notes, opaque, input_shape)
        if "constants.pkl" in entries or any(m.startswith("code/") for m in entries):
            opaque = load_torchscript(raw, zf, name)
            return _Payload(
                "torchscript", dict(opaque.state_dict()), ["TorchScript: runs as the uploaded compiled graph"], opaque
            )
        return _Payload("state_dict", unwrap_state_dict(load_torch_save(raw, name), name, notes), notes)
    if suffix == ".pt2":
        raise not_a_model(name, raw, "a torch.export archive (zip)")
    if fmt == "pickle":
        return _Payload("state_dict", unwrap_state_dict(load_torch_save(raw, name), name, notes), notes)
    raise not_a_model(name, raw, "a torch.save state_dict, TorchScript archive or safetensors file")


def _load_upload(data: bytes | str | os.PathLike, name: str, arch: str | None, max_bytes: int) -> Uploaded:
    suffix = _check_suffix(name)
    raw = read_bytes(data, name, max_bytes)
    if arch is not None:
        zoo_spec(arch)
    p = _read_payload(raw, name, suffix, max_bytes)
    sparsity: dict[str, float] = {}
    if p.kind == "state_dict":
        p.state, sparsity = fold_prune_masks(p.state, name)
    check_finite(p.state, name)
    if p.kind == "state_dict":
        arch, model, how = fit(p.state, arch, name)
        notes = [how, *([describe_sparsity(sparsity, p.state)] if sparsity else []), *p.notes]
        return Uploaded(model, p.kind, arch, zoo_spec(arch).input_shape, notes, name, len(raw), sparsity)
    assert p.opaque is not None  # a graph payload always carries its module
    eager = as_eager(p.opaque, p.state, arch, name, p.notes)
    if eager is not None:
        arch, model = eager
        return Uploaded(model, p.kind, arch, zoo_spec(arch).input_shape, p.notes, name, len(raw))
    p.notes.append(
        f"{p.kind} graphs cannot be pruned or quantized by PruneScope (it prunes nn.Conv2d/nn.Linear "
        "modules, which a compiled graph no longer has): measure it as uploaded, or upload its state_dict"
    )
    return Uploaded(p.opaque.eval(), p.kind, None, p.input_shape, p.notes, name, len(raw))


# -- what the pipeline needs to know ----------------------------------------------------------------
def prunable(uploaded: Uploaded) -> bool:
    """True if the pipeline can prune and quantize it: an eager module with Conv2d/Linear layers."""
    from compress_core.engine.prune.unstructured import prunable_layers

    m = uploaded.model
    return not isinstance(m, (torch.jit.ScriptModule, torch.fx.GraphModule, ExportedGraph)) and bool(prunable_layers(m))


def upload_spec(
    uploaded: Uploaded, model_id: str, dataset: str | None = None, num_classes: int | None = None
) -> ModelSpec:
    """A ``ModelSpec`` for ``pipeline.Workbench(model_id, model=uploaded.model, spec=...)``."""
    base = zoo_spec(uploaded.arch) if uploaded.arch is not None else None
    input_shape = base.input_shape if base else uploaded.input_shape
    dataset = dataset or (base.dataset if base else None)
    num_classes = num_classes or (base.num_classes if base else None)
    if input_shape is None or dataset is None or num_classes is None:
        raise ValueError(
            f"the architecture of {uploaded.filename} is unknown: give its dataset and num_classes"
            + ("" if input_shape else ", and upload a torch.export program (it records the input shape)")
        )
    return ModelSpec(
        id=model_id,
        name=f"{uploaded.filename} ({uploaded.kind})",
        dataset=dataset,
        input_shape=input_shape,
        num_classes=num_classes,
        params=sum(p.numel() for p in uploaded.model.parameters()),
        reference_accuracy=None,
        reference_source="uploaded by the user",
        license="as supplied by the user",
        builder=lambda: copy.deepcopy(uploaded.model),
    )


def dataset_base(dataset: str) -> ModelSpec:
    """The first zoo model trained on ``dataset``: it lends an opaque upload its input shape and classes."""
    for spec in REGISTRY.values():
        if spec.dataset == dataset:
            return spec
    datasets = sorted({s.dataset for s in REGISTRY.values() if s.dataset != "imagefolder"})
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(datasets)}")


def spec_for_upload(uploaded: Uploaded, model_id: str, dataset: str | None = None) -> ModelSpec:
    """The ``ModelSpec`` an upload is evaluated under: a zoo architecture brings its own dataset; an opaque
    graph needs ``dataset`` (which also supplies the input shape TorchScript does not record)."""
    if uploaded.arch is not None:
        return upload_spec(uploaded, model_id)
    if dataset is None:
        raise ValueError(
            f"{uploaded.filename} matches no zoo architecture: say which dataset it classifies "
            "(mnist or cifar10) so it can be evaluated"
        )
    base = dataset_base(dataset)
    if uploaded.input_shape is None:
        uploaded = dataclasses.replace(uploaded, input_shape=base.input_shape)
    return upload_spec(uploaded, model_id, dataset=dataset, num_classes=base.num_classes)
