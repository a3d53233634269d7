"""Bring your own model: load a user's file into a runnable ``nn.Module``, or refuse with a clear reason.

Accepted (checked by extension *and* content):
- ``.safetensors``: a state_dict. The format is a JSON header plus raw tensor bytes: no code.
- ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt``: a ``torch.save``'d state_dict (or a checkpoint dict holding
  one under ``state_dict``/``model``/...), loaded ONLY with ``torch.load(weights_only=True)``,
  whose unpickler accepts tensors and plain containers and refuses every other pickle global.
  The same extensions also take a TorchScript archive (``torch.jit.save``).
- ``.pt2``: a ``torch.export`` program (``torch.export.save``).

A state_dict needs an architecture from the model zoo: ``arch`` or, when ``None``, the one
architecture whose parameter names and shapes it matches exactly. TorchScript and torch.export
models whose weights match a zoo architecture, *and* whose outputs on a random input equal that
architecture's, are converted to the eager module so they can be pruned and quantized; others
run as uploaded (measurable, not compressible: see ``prunable``).

Safety (torch 2.14, checked by hand; tests/core/test_uploads.py holds the attacks):
- ``torch.jit.load`` unpickles ``data.pkl``/``constants.pkl`` with TorchScript's own C++ unpickler,
  which knows only tensors, containers and TorchScript/torchbind classes: a pickle ``GLOBAL`` like
  ``os.system`` fails to load. But TorchScript code is a program: ``torch.jit.load`` *runs* an
  archive's ``__setstate__`` methods while loading, and TorchScript ops include file I/O
  (``aten::save`` writes a file, ``aten::from_file`` reads one). So archives defining
  ``__setstate__`` are refused before loading, and loaded graphs using ops outside
  aten/prim/quantized, or the file ops, are refused before they run.
- ``torch.export.load`` is not safe on untrusted files: it falls back to
  ``torch.load(weights_only=False)`` for pickled weights, constants and sample inputs,
  ``pickle.loads`` opaque objects, resolves node targets by ``getattr`` from ``torch`` (e.g.
  ``torch.os.system``), ``sympify``s (``eval``s) shape expressions and ``exec``s guard code. So a
  ``.pt2`` is checked first: known entries only, no pickled payloads, sample inputs that load with
  ``weights_only=True``, ATen/operator targets only, shape expressions from a small grammar and no
  guard code. Only then is ``torch.export.load`` called.
- Residual risk: the C++ readers (zip, TorchScript) are not hardened against malicious input
  and have had memory-safety bugs; serve uploads only to users you would let run code.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import json
import logging
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
ACCEPTED_SUFFIXES = (".safetensors", ".pt2", *STATE_DICT_SUFFIXES)
MAX_ZIP_ENTRIES = 20_000
MAX_ZIP_RATIO = 10  # torch writes uncompressed (stored) zips; a high ratio means a crafted archive
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")
SCRIPT_NAMESPACES = ("aten", "prim", "quantized")
FILE_OPS = ("save", "from_file")
PICKLE_REFUSED = ("Pickled code is refused: unpickling it could run code from the file. Save the weights instead "
                  "(torch.save(model.state_dict(), path) or safetensors.torch.save_file), or use torch.export.save")


MAX_UPLOAD_BYTES = 200 * 2**20  # refuse bigger uploads before reading them


class UploadError(ValueError):
    """An uploaded file was refused; the message says what is wrong with it and what to upload instead."""


@dataclass
class Uploaded:
    model: nn.Module  # eval mode
    kind: str  # "state_dict" | "torchscript" | "torch.export"
    arch: str | None  # zoo architecture the weights were matched to
    input_shape: tuple[int, ...] | None  # one sample, CHW; None when the file does not say
    notes: list[str] = field(default_factory=list)
    filename: str = ""
    size_bytes: int = 0


# -- reading and sniffing --------------------------------------------------------------------------
def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _read(data: bytes | str | os.PathLike, name: str, max_bytes: int) -> bytes:
    limit = f"{_size(max_bytes)} upload limit"
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        path = Path(data)
        if not path.is_file():
            raise UploadError(f"{path} is not a file")
        if (size := path.stat().st_size) > max_bytes:
            raise UploadError(f"{name} is {_size(size)}, over the {limit}")
        raw = path.read_bytes()
    if not raw:
        raise UploadError(f"{name} is empty (0 bytes): the upload did not complete, or the wrong file was chosen")
    if len(raw) > max_bytes:
        raise UploadError(f"{name} is {_size(len(raw))}, over the {limit}")
    return raw


def _sniff(raw: bytes) -> str:
    if raw[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(raw) >= 9 and raw[8:9] == b"{" and int.from_bytes(raw[:8], "little") < 100 * 2**20:
        return "safetensors"
    if len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5:
        return "pickle"
    return "unknown"


def _not_a_model(name: str, raw: bytes, expected: str) -> UploadError:
    return UploadError(f"{name} is not an accepted format: expected {expected}, but it starts with {raw[:8]!r}, "
                       f"which is not a zip archive, safetensors header or torch.save file")


def _open_zip(raw: bytes, name: str, max_bytes: int) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise UploadError(f"{name} is truncated or corrupt: it starts like a zip archive (torch.save, TorchScript or "
                          "torch.export) but its table of contents is missing; upload the complete file") from None
    infos = zf.infolist()
    unpacked = sum(i.file_size for i in infos)
    if len(infos) > MAX_ZIP_ENTRIES or unpacked > max_bytes or unpacked > MAX_ZIP_RATIO * len(raw) + 2**20:
        raise UploadError(f"{name} expands to {unpacked / 2**20:.1f} MiB in {len(infos)} entries from "
                          f"{len(raw) / 2**20:.2f} MiB: refused as a possible zip bomb (PyTorch writes uncompressed "
                          "archives); upload the file as torch.save / torch.jit.save / torch.export.save wrote it")
    if any(i.header_offset + i.compress_size > len(raw) for i in infos):
        raise UploadError(f"{name} is truncated or corrupt: its entries run past the end of the file")
    return zf


def _members(zf: zipfile.ZipFile) -> dict[str, str]:
    """Entry names without the archive's root folder (torch names it after the saved file)."""
    return {n.split("/", 1)[1] if "/" in n else n: n for n in zf.namelist()}


# -- state dicts -------------------------------------------------------------------------------------
def _load_safetensors(raw: bytes, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        return load(raw)
    except Exception as exc:  # noqa: BLE001 - SafetensorError has no stable base class to catch
        raise UploadError(f"{name} is not a valid safetensors file ({exc}); it may be truncated or corrupt") from None


def _load_torch_save(raw: bytes, name: str) -> object:
    import pickle

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it needs {found.group(1)})" if found else ""
        raise UploadError(f"{name} is not an accepted format: it is a pickle of Python objects, not only tensors"
                          f"{what}, e.g. a whole model saved with torch.save(model). {PICKLE_REFUSED}") from None
    except Exception as exc:  # noqa: BLE001
        raise UploadError(f"{name} could not be read as a torch.save file ({type(exc).__name__}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}); "
                          "it is probably truncated or corrupt") from None


def _state_dict(obj: object, name: str, notes: list[str]) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                others = [k for k in obj if k != key]
                notes.append(f"weights taken from checkpoint[{key!r}]" + (f"; ignored {others[:5]}" if others else ""))
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise UploadError(f"{name} holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        k = bad[0]
        raise UploadError(f"{name} is not a state_dict: entry {k!r} is a {type(obj[k]).__name__}, not a tensor")
    if not obj:
        raise UploadError(f"{name} holds no tensors")
    for prefix in ("module.", "_orig_mod."):  # nn.DataParallel / torch.compile wrappers
        if all(k.startswith(prefix) for k in obj):
            obj = {k.removeprefix(prefix): v for k, v in obj.items()}
            notes.append(f"removed the {prefix!r} prefix from every key")
    return dict(obj)


def check_finite(state: dict[str, torch.Tensor], name: str) -> None:
    """Refuse NaN/Inf weights, naming the first tensor that holds them."""
    for key, t in state.items():
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
                raise UploadError(f"{name}: tensor {key!r} holds {nan} NaN and {inf} Inf of its {t.numel()} values; "
                                  "PruneScope refuses non-finite weights (every output would be meaningless)")


@functools.cache
def catalogue() -> dict:
    """Every architecture an upload can be matched to: the registry plus the torchvision models."""
    from .models import REGISTRY
    from .models.torchvision_zoo import torchvision_specs

    return {**{s.id: s for s in torchvision_specs()}, **REGISTRY}


def _spec(arch: str):
    if arch not in catalogue():
        raise UploadError(f"unknown architecture {arch!r}; choose one of: {', '.join(catalogue())}")
    return catalogue()[arch]


@functools.lru_cache(maxsize=32)
def _signature(arch: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    state = _spec(arch).builder().state_dict()
    return tuple((k, tuple(v.shape)) for k, v in state.items() if not k.endswith("num_batches_tracked"))


def _mismatch(arch: str, state: dict[str, torch.Tensor]) -> str:
    want = dict(_signature(arch))
    got = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    shapes = [f"{k} is {got[k]} in the file but {want[k]} in {arch}" for k in want if k in got and got[k] != want[k]]
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    plural = "es" if len(shapes) > 1 else ""
    parts = [f"{len(shapes)} shape mismatch{plural}: {'; '.join(shapes[:3])}" if shapes else "",
             f"{len(missing)} missing: {', '.join(missing[:3])}" if missing else "",
             f"{len(unexpected)} unexpected: {', '.join(unexpected[:3])}" if unexpected else ""]
    return "; ".join(p for p in parts if p)


def _fit(state: dict[str, torch.Tensor], arch: str | None, name: str) -> tuple[str, nn.Module, str]:
    """Build the architecture the weights fit (``arch``, else the unique exact match) and load them."""
    if arch is None:
        from .models import REGISTRY

        fits = [a for a in REGISTRY if not _mismatch(a, state)]  # cheap tier first: no torchvision import
        fits = fits or [a for a in catalogue() if a not in REGISTRY and not _mismatch(a, state)]
        if len(fits) > 1:
            raise UploadError(f"{name} fits several architectures ({', '.join(fits)}): pass arch= to choose")
        if not fits:
            closest = max(catalogue(), key=lambda a: len(set(dict(_signature(a))) & set(state)))
            raise UploadError(f"{name} matches no architecture PruneScope knows; closest is {closest}: "
                              f"{_mismatch(closest, state)}. Pass arch= one of {', '.join(catalogue())}")
        arch, how = fits[0], f"architecture {fits[0]} detected from parameter names and shapes"
    else:
        _spec(arch)
        if problem := _mismatch(arch, state):
            raise UploadError(f"{name} does not fit {arch}: {problem}")
        how = f"weights loaded into {arch}"
    model = _spec(arch).builder()
    model.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent (checked above)
    return arch, model.eval(), how


# -- TorchScript -----------------------------------------------------------------------------------
def _script_ops(graph) -> set[str]:
    kinds, stack = set(), [graph.nodes()]
    while stack:
        for node in stack.pop():
            kinds.add(node.kind())
            stack.extend(b.nodes() for b in node.blocks())
    return kinds


def _load_torchscript(raw: bytes, zf: zipfile.ZipFile, name: str) -> torch.jit.ScriptModule:
    for entry in zf.namelist():
        if entry.endswith(".py") and b"__setstate__" in zf.read(entry):
            raise UploadError(f"{name} is a TorchScript archive that defines __setstate__ ({entry}): torch.jit.load "
                              "runs that code while loading and TorchScript code can read and write files, so "
                              "PruneScope refuses it. Upload the weights (.safetensors) or a torch.export .pt2")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated" (torch 2.14)
            module = torch.jit.load(io.BytesIO(raw), map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        text = str(exc).strip()
        if "Unknown type name" in text or "GLOBAL" in text:
            raise UploadError(f"{name} is not an accepted format: its TorchScript pickle refers to a Python object "
                              f"({text.splitlines()[-1]}). {PICKLE_REFUSED}") from None
        raise UploadError(f"{name} could not be loaded as TorchScript ({type(exc).__name__}: "
                          f"{text.splitlines()[0] if text else 'no detail'}); it may be truncated or corrupt") from None
    if not hasattr(module, "forward"):
        raise UploadError(f"{name} is a TorchScript archive without a forward method: nothing to run")
    graph = module.forward.graph.copy()
    torch._C._jit_pass_inline(graph)
    bad = sorted(k for k in _script_ops(graph) if k.split("::")[0] not in SCRIPT_NAMESPACES
                 or k.split("::")[1] in FILE_OPS)
    if bad:
        raise UploadError(f"{name} is a TorchScript model whose forward calls {', '.join(bad[:5])}; PruneScope runs "
                          "only graphs of aten/prim/quantized operators without file access")
    return module.eval()


# -- torch.export --------------------------------------------------------------------------------------
PT2_ENTRY = re.compile(r"archive_format|archive_version|byteorder|\.data/(version|serialization_id)|models/model\.json"
                       r"|data/(weights|constants)/[\w.]+|data/sample_inputs/model\.pt|extra/[\w.-]+")
PT2_TARGET = re.compile(r"torch\.ops\.(aten|prims|quantized_decomposed)\.\w+(\.\w+)?|_operator\.(getitem|add|sub|mul"
                        r"|truediv|floordiv|mod|neg|pow|eq|ne|lt|le|gt|ge|and_|or_|not_)|math\.(ceil|floor|trunc|sqrt)"
                        r"|torch\.sym_(int|float|max|min|not|ite|sqrt|sum)")
SYMPY_NAMES = {"Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "floor",
               "ceiling", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "True", "False", "oo", "positive",
               "integer", "nonnegative", "real", "finite", "FloorDiv", "ModularIndexing", "Where", "PythonMod",
               "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "PowByNatural", "FloatPow", "FloatTrueDiv",
               "IntTrueDiv", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity"}
SYMPY_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_]\w*)|'[a-z]\d+'|\d+(?:\.\d+)?(?:e-?\d+)?|[-+*/(),=<>!%])")


def _safe_expr(text: str) -> bool:
    pos = 0
    while pos < len(text):
        m = SYMPY_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            return text[pos:].strip() == ""
        ident = m.group("name")
        if ident and ident not in SYMPY_NAMES and not re.fullmatch(r"[a-z]\d+", ident):
            return False
        pos = m.end()
    return True


def _walk_program(obj: object, name: str) -> None:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                if key in ("target", "as_operator") and isinstance(value, str):
                    op = value.split(".")[3] if value.startswith("torch.ops.") else ""
                    if not PT2_TARGET.fullmatch(value) or op in FILE_OPS:
                        raise UploadError(f"{name} is a torch.export program that calls {value!r}; PruneScope loads "
                                          "only programs of ATen operators without file access")
                if key == "expr_str" and not (isinstance(value, str) and _safe_expr(value)):
                    raise UploadError(f"{name} holds a shape expression PruneScope does not parse: "
                                      f"{str(value)[:80]!r}")
                if key in ("as_custom_obj", "as_graph") and value:
                    raise UploadError(f"{name} is a torch.export program with custom objects or sub-graphs; refused")
                stack.append(value)


def _check_pt2(zf: zipfile.ZipFile, name: str) -> None:
    try:
        _check_pt2_entries(zf, name)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, UploadError):
            raise
        raise UploadError(f"{name} is a malformed torch.export archive ({type(exc).__name__}: {exc}); refused") from None


def _check_pt2_entries(zf: zipfile.ZipFile, name: str) -> None:
    members = _members(zf)
    odd = [m for m in members if not PT2_ENTRY.fullmatch(m)]
    if odd:
        raise UploadError(f"{name} holds entries a torch.export.save program does not ({', '.join(odd[:3])}); "
                          "refused (legacy or AOTInductor archives can run code while loading)")
    if "archive_format" not in members or zf.read(members["archive_format"]).strip() != b"pt2":
        raise UploadError(f"{name} is not a torch.export archive (no archive_format 'pt2' entry)")
    for cfg in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
        for key, meta in json.loads(zf.read(members[cfg])).get("config", {}).items() if cfg in members else ():
            if meta.get("use_pickle") or not re.fullmatch(r"(weight|tensor)_\d+", meta.get("path_name", "")):
                raise UploadError(f"{name} stores {key!r} as a pickled object. {PICKLE_REFUSED}")
    if "data/sample_inputs/model.pt" in members:
        _load_torch_save(zf.read(members["data/sample_inputs/model.pt"]), f"{name} (its sample inputs)")
    if "models/model.json" not in members:
        raise UploadError(f"{name} holds no program (models/model.json is missing)")
    program = json.loads(zf.read(members["models/model.json"]))
    if program.get("guards_code"):
        raise UploadError(f"{name} carries guard code, which torch.export runs as Python; refused")
    if not all(re.fullmatch(r"[a-z]\d+", k) for k in program.get("range_constraints", {})):
        raise UploadError(f"{name} holds shape constraints PruneScope does not parse; refused")
    _walk_program(program, name)


class ExportedGraph(nn.Module):
    """Wraps ``ExportedProgram.module()`` for the pipeline: ``.eval()``/``.train()`` only set a flag (the
    graph's own ``train()`` raises), and a program exported for a fixed batch size runs on any batch,
    in chunks of that size with the last one zero-padded."""

    def __init__(self, graph: nn.Module, batch: int | None) -> None:
        super().__init__()
        self.graph, self.batch = graph, batch

    def train(self, mode: bool = True) -> ExportedGraph:
        self.training = mode  # the exported graph's behaviour (e.g. BatchNorm) was fixed at export time
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch is None:
            return self.graph(x)
        outs = []
        for i in range(0, len(x), self.batch):
            chunk = x[i:i + self.batch]
            pad = self.batch - len(chunk)
            if pad:
                chunk = torch.cat([chunk, chunk.new_zeros(pad, *chunk.shape[1:])])
            outs.append(self.graph(chunk)[:self.batch - pad])
        return torch.cat(outs)


def _load_export(raw: bytes, zf: zipfile.ZipFile, name: str) -> tuple[nn.Module, dict, tuple[int, ...], list[str]]:
    _check_pt2(zf, name)
    log = logging.getLogger("torch.export")  # it logs a traceback before re-raising on a corrupt archive
    level = log.level
    try:
        log.setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(raw))
    except Exception as exc:  # noqa: BLE001
        raise UploadError(f"{name} could not be loaded as a torch.export program ({type(exc).__name__}: "
                          f"{str(exc).strip()[:200]}); save it with torch.export.save") from None
    finally:
        log.setLevel(level)
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    if len(inputs) != 1:
        raise UploadError(f"{name} takes {len(inputs)} inputs; PruneScope feeds a model one batch of images")
    shape = tuple(inputs[0].meta["val"].shape)
    if not all(isinstance(d, int) for d in shape[1:]):
        raise UploadError(f"{name} was exported with dynamic image sizes {shape}; export with a fixed image size")
    state = {**program.state_dict, **{k: v for k, v in program.constants.items() if isinstance(v, torch.Tensor)}}
    batch = shape[0] if isinstance(shape[0], int) else None
    module = ExportedGraph(program.module(), batch)
    notes = ["torch.export program: runs as the exported graph (ExportedProgram.module())"]
    if batch is not None:
        notes.append(f"exported for a fixed batch of {shape[0]}: run in chunks of {shape[0]}; export with a "
                     "dynamic batch dimension (torch.export.Dim) for faster evaluation")
    return module, state, tuple(int(d) for d in shape[1:]), notes


# -- the entry point ---------------------------------------------------------------------------------
def _as_eager(opaque: nn.Module, state: dict, arch: str | None, name: str,
              notes: list[str]) -> tuple[str, nn.Module] | None:
    """The zoo architecture with these weights, if its outputs equal the uploaded graph's."""
    try:
        arch_id, eager, how = _fit(state, arch, name)
    except UploadError:
        if arch is not None:
            raise
        return None
    x = torch.randn(1, *_spec(arch_id).input_shape, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            a, b = opaque(x), eager(x)
        diff = float((a - b).abs().max()) if a.shape == b.shape else float("inf")
    except RuntimeError as exc:  # e.g. the graph wants another input shape than the zoo model
        diff = float("inf")
        notes.append(f"the uploaded graph does not run on {arch_id}'s input {tuple(x.shape)}: {str(exc)[:120]}")
    if diff > 1e-4 * (1.0 + float(b.abs().max())):
        notes.append(f"weights fit {arch_id} but the uploaded graph computes something else (max output difference "
                     f"{diff:.3g}): kept as uploaded")
        return None
    notes.append(f"{how}; outputs equal the uploaded graph's (max difference {diff:.1e}), so it runs as eager "
                 f"{arch_id} and can be pruned and quantized")
    return arch_id, eager


def load_upload(data: bytes | str | os.PathLike, filename: str, arch: str | None = None,
                max_bytes: int = MAX_UPLOAD_BYTES) -> Uploaded:
    """Load an uploaded model file, or raise ``UploadError`` saying exactly why not (see module docstring)."""
    name = Path(filename).name or "the upload"
    try:
        return _load_upload(data, name, arch, max_bytes)
    except UploadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file no check foresaw: still one clear error, never a traceback
        raise UploadError(f"{name} could not be loaded ({type(exc).__name__}: "
                          f"{(str(exc).strip().splitlines() or ['no detail'])[0][:200]})") from None


def _load_upload(data: bytes | str | os.PathLike, name: str, arch: str | None, max_bytes: int) -> Uploaded:
    suffix = Path(name).suffix.lower()
    if suffix in (".pkl", ".pickle", ".joblib"):
        raise UploadError(f"{name} is not an accepted format: plain Python pickles are refused. {PICKLE_REFUSED}")
    if suffix not in ACCEPTED_SUFFIXES:
        raise UploadError(f"{name} is not an accepted format ({suffix or 'no extension'}); upload one of "
                          f"{', '.join(ACCEPTED_SUFFIXES)} (safetensors or torch.save state_dict, TorchScript, "
                          "torch.export program)" + ("; ONNX files cannot be pruned here" if suffix == ".onnx" else ""))
    raw = _read(data, name, max_bytes)
    fmt, notes = _sniff(raw), []
    if arch is not None:
        _spec(arch)
    if suffix == ".safetensors" or (suffix in STATE_DICT_SUFFIXES and fmt == "safetensors"):
        if fmt != "safetensors":
            raise _not_a_model(name, raw, "a safetensors file")
        kind, state = "state_dict", _state_dict(_load_safetensors(raw, name), name, notes)
    elif fmt == "zip":
        zf = _open_zip(raw, name, max_bytes)
        members = _members(zf)
        if suffix == ".pt2" or "archive_format" in members:
            opaque, state, input_shape, notes = _load_export(raw, zf, name)
            kind = "torch.export"
        elif "constants.pkl" in members or any(m.startswith("code/") for m in members):
            opaque, kind = _load_torchscript(raw, zf, name), "torchscript"
            state, input_shape = dict(opaque.state_dict()), None
            notes.append("TorchScript: runs as the uploaded compiled graph")
        else:
            kind, state = "state_dict", _state_dict(_load_torch_save(raw, name), name, notes)
    elif suffix == ".pt2":
        raise _not_a_model(name, raw, "a torch.export archive (zip)")
    elif fmt == "pickle":
        kind, state = "state_dict", _state_dict(_load_torch_save(raw, name), name, notes)
    else:
        raise _not_a_model(name, raw, "a torch.save state_dict, TorchScript archive or safetensors file")
    check_finite(state, name)
    if kind == "state_dict":
        arch, model, how = _fit(state, arch, name)
        notes.insert(0, how)
        return Uploaded(model, kind, arch, _spec(arch).input_shape, notes, name, len(raw))
    eager = _as_eager(opaque, state, arch, name, notes)
    if eager is not None:
        arch, model = eager
        return Uploaded(model, kind, arch, _spec(arch).input_shape, notes, name, len(raw))
    notes.append(f"{kind} graphs cannot be pruned or quantized by PruneScope (it prunes nn.Conv2d/nn.Linear "
                 "modules, which a compiled graph no longer has): measure it as uploaded, or upload its state_dict")
    return Uploaded(opaque.eval(), kind, None, input_shape, notes, name, len(raw))


def prunable(uploaded: Uploaded) -> bool:
    """True if the pipeline can prune and quantize it: an eager module with Conv2d/Linear layers."""
    from .prune.unstructured import prunable_layers

    m = uploaded.model
    return not isinstance(m, (torch.jit.ScriptModule, torch.fx.GraphModule, ExportedGraph)) and bool(prunable_layers(m))


def upload_spec(uploaded: Uploaded, model_id: str, dataset: str | None = None, num_classes: int | None = None):
    """A ``ModelSpec`` for ``pipeline.Workbench(model_id, model=uploaded.model, spec=...)``."""
    from .models import ModelSpec

    base = _spec(uploaded.arch) if uploaded.arch is not None else None
    input_shape = base.input_shape if base else uploaded.input_shape
    dataset = dataset or (base.dataset if base else None)
    num_classes = num_classes or (base.num_classes if base else None)
    if input_shape is None or dataset is None or num_classes is None:
        raise ValueError(f"the architecture of {uploaded.filename} is unknown: give its dataset and num_classes"
                         + ("" if input_shape else ", and upload a torch.export program (it records the input shape)"))
    return ModelSpec(
        id=model_id, name=f"{uploaded.filename} ({uploaded.kind})", dataset=dataset, input_shape=input_shape,
        num_classes=num_classes, params=sum(p.numel() for p in uploaded.model.parameters()),
        reference_accuracy=None, reference_source="uploaded by the user", license="as supplied by the user",
        builder=lambda: copy.deepcopy(uploaded.model))


def dataset_base(dataset: str):
    """The first zoo model trained on ``dataset``: it lends an opaque upload its input shape and classes."""
    from .models import REGISTRY

    for spec in REGISTRY.values():
        if spec.dataset == dataset:
            return spec
    datasets = sorted({s.dataset for s in REGISTRY.values() if s.dataset != "imagefolder"})
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(datasets)}")


def spec_for_upload(uploaded: Uploaded, model_id: str, dataset: str | None = None):
    """The ``ModelSpec`` an upload is evaluated under: a zoo architecture brings its own dataset; an opaque
    graph needs ``dataset`` (which also supplies the input shape TorchScript does not record)."""
    if uploaded.arch is not None:
        return upload_spec(uploaded, model_id)
    if dataset is None:
        raise ValueError(f"{uploaded.filename} matches no zoo architecture: say which dataset it classifies "
                         "(mnist or cifar10) so it can be evaluated")
    base = dataset_base(dataset)
    if uploaded.input_shape is None:
        uploaded = dataclasses.replace(uploaded, input_shape=base.input_shape)
    return upload_spec(uploaded, model_id, dataset=dataset, num_classes=base.num_classes)

