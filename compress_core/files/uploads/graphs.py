"""Compiled graphs: TorchScript archives and ``torch.export`` programs, checked before they load.

- ``torch.jit.load`` unpickles ``data.pkl``/``constants.pkl`` with TorchScript's own C++ unpickler,
  which knows only tensors, containers and TorchScript/torchbind classes: a pickle ``GLOBAL`` like
  ``os.system`` fails to load. But TorchScript code is a program: ``torch.jit.load`` *runs* an
  archive's ``__setstate__`` methods while loading, and TorchScript ops include file I/O
  (``aten::save`` writes a file, ``aten::from_file`` reads one). So archives defining
  ``__setstate__`` are refused before loading, and loaded graphs using ops outside
  aten/prim/quantized, or the file ops, are refused before they run.
- ``torch.export.load`` is not safe on untrusted files (see the package docstring), so a ``.pt2`` is
  checked first: known entries only, no pickled payloads, sample inputs that load with
  ``weights_only=True``, ATen/operator targets only, shape expressions from a small grammar and no
  guard code. Only then is ``torch.export.load`` called.

``as_eager`` turns a graph whose weights fit a zoo architecture, and whose outputs equal it, into
that eager module, so it can be pruned and quantized; ``ExportedGraph`` runs the others.
"""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
import zipfile

import torch
from torch import nn

from compress_core.files.uploads.errors import PICKLE_REFUSED, UploadError
from compress_core.files.uploads.reading import load_torch_save, members
from compress_core.files.uploads.state_dict import fit, zoo_spec

SCRIPT_NAMESPACES = ("aten", "prim", "quantized")
FILE_OPS = ("save", "from_file")


# -- TorchScript ----------------------------------------------------------------------------------
def _script_ops(graph) -> set[str]:
    kinds, stack = set(), [graph.nodes()]
    while stack:
        for node in stack.pop():
            kinds.add(node.kind())
            stack.extend(b.nodes() for b in node.blocks())
    return kinds


def load_torchscript(raw: bytes, zf: zipfile.ZipFile, name: str) -> torch.jit.ScriptModule:
    for entry in zf.namelist():
        if entry.endswith(".py") and b"__setstate__" in zf.read(entry):
            raise UploadError(
                f"{name} is a TorchScript archive that defines __setstate__ ({entry}): torch.jit.load "
                "runs that code while loading and TorchScript code can read and write files, so "
                "PruneScope refuses it. Upload the weights (.safetensors) or a torch.export .pt2"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated" (torch 2.14)
            module = torch.jit.load(io.BytesIO(raw), map_location="cpu")
    except Exception as exc:
        text = str(exc).strip()
        if "Unknown type name" in text or "GLOBAL" in text:
            raise UploadError(
                f"{name} is not an accepted format: its TorchScript pickle refers to a Python object "
                f"({text.splitlines()[-1]}). {PICKLE_REFUSED}"
            ) from None
        raise UploadError(
            f"{name} could not be loaded as TorchScript ({type(exc).__name__}: "
            f"{text.splitlines()[0] if text else 'no detail'}); it may be truncated or corrupt"
        ) from None
    if not hasattr(module, "forward"):
        raise UploadError(f"{name} is a TorchScript archive without a forward method: nothing to run")
    graph = module.forward.graph.copy()
    torch._C._jit_pass_inline(graph)
    bad = sorted(
        k for k in _script_ops(graph) if k.split("::")[0] not in SCRIPT_NAMESPACES or k.split("::")[1] in FILE_OPS
    )
    if bad:
        raise UploadError(
            f"{name} is a TorchScript model whose forward calls {', '.join(bad[:5])}; PruneScope runs "
            "only graphs of aten/prim/quantized operators without file access"
        )
    return module.eval()


# -- torch.export --------------------------------------------------------------------------------------
PT2_ENTRY = re.compile(
    r"archive_format|archive_version|byteorder|\.data/(version|serialization_id)|models/model\.json"
    r"|data/(weights|constants)/[\w.]+|data/sample_inputs/model\.pt|extra/[\w.-]+"
)
PT2_TARGET = re.compile(
    r"torch\.ops\.(aten|prims|quantized_decomposed)\.\w+(\.\w+)?|_operator\.(getitem|add|sub|mul"
    r"|truediv|floordiv|mod|neg|pow|eq|ne|lt|le|gt|ge|and_|or_|not_)|math\.(ceil|floor|trunc|sqrt)"
    r"|torch\.sym_(int|float|max|min|not|ite|sqrt|sum)"
)
SYMPY_NAMES = {
    "Symbol",
    "Integer",
    "Rational",
    "Float",
    "Add",
    "Mul",
    "Pow",
    "Mod",
    "Max",
    "Min",
    "Abs",
    "floor",
    "ceiling",
    "Eq",
    "Ne",
    "Lt",
    "Le",
    "Gt",
    "Ge",
    "And",
    "Or",
    "Not",
    "True",
    "False",
    "oo",
    "positive",
    "integer",
    "nonnegative",
    "real",
    "finite",
    "FloorDiv",
    "ModularIndexing",
    "Where",
    "PythonMod",
    "CleanDiv",
    "CeilToInt",
    "FloorToInt",
    "CeilDiv",
    "PowByNatural",
    "FloatPow",
    "FloatTrueDiv",
    "IntTrueDiv",
    "TruncToFloat",
    "TruncToInt",
    "RoundToInt",
    "RoundDecimal",
    "ToFloat",
    "Identity",
}
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
                        raise UploadError(
                            f"{name} is a torch.export program that calls {value!r}; PruneScope loads "
                            "only programs of ATen operators without file access"
                        )
                if key == "expr_str" and not (isinstance(value, str) and _safe_expr(value)):
                    raise UploadError(f"{name} holds a shape expression PruneScope does not parse: {str(value)[:80]!r}")
                if key in ("as_custom_obj", "as_graph") and value:
                    raise UploadError(f"{name} is a torch.export program with custom objects or sub-graphs; refused")
                stack.append(value)


def _check_pt2(zf: zipfile.ZipFile, name: str) -> None:
    try:
        _check_pt2_entries(zf, name)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, UploadError):
            raise
        raise UploadError(
            f"{name} is a malformed torch.export archive ({type(exc).__name__}: {exc}); refused"
        ) from None


def _check_pt2_entries(zf: zipfile.ZipFile, name: str) -> None:
    entries = members(zf)
    odd = [m for m in entries if not PT2_ENTRY.fullmatch(m)]
    if odd:
        raise UploadError(
            f"{name} holds entries a torch.export.save program does not ({', '.join(odd[:3])}); "
            "refused (legacy or AOTInductor archives can run code while loading)"
        )
    if "archive_format" not in entries or zf.read(entries["archive_format"]).strip() != b"pt2":
        raise UploadError(f"{name} is not a torch.export archive (no archive_format 'pt2' entry)")
    for cfg in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
        for key, meta in json.loads(zf.read(entries[cfg])).get("config", {}).items() if cfg in entries else ():
            if meta.get("use_pickle") or not re.fullmatch(r"(weight|tensor)_\d+", meta.get("path_name", "")):
                raise UploadError(f"{name} stores {key!r} as a pickled object. {PICKLE_REFUSED}")
    if "data/sample_inputs/model.pt" in entries:
        load_torch_save(zf.read(entries["data/sample_inputs/model.pt"]), f"{name} (its sample inputs)")
    if "models/model.json" not in entries:
        raise UploadError(f"{name} holds no program (models/model.json is missing)")
    program = json.loads(zf.read(entries["models/model.json"]))
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
            chunk = x[i : i + self.batch]
            pad = self.batch - len(chunk)
            if pad:
                chunk = torch.cat([chunk, chunk.new_zeros(pad, *chunk.shape[1:])])
            outs.append(self.graph(chunk)[: self.batch - pad])
        return torch.cat(outs)


def load_export(raw: bytes, zf: zipfile.ZipFile, name: str) -> tuple[nn.Module, dict, tuple[int, ...], list[str]]:
    _check_pt2(zf, name)
    log = logging.getLogger("torch.export")  # it logs a traceback before re-raising on a corrupt archive
    level = log.level
    try:
        log.setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(raw))
    except Exception as exc:
        raise UploadError(
            f"{name} could not be loaded as a torch.export program ({type(exc).__name__}: "
            f"{str(exc).strip()[:200]}); save it with torch.export.save"
        ) from None
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
        notes.append(
            f"exported for a fixed batch of {shape[0]}: run in chunks of {shape[0]}; export with a "
            "dynamic batch dimension (torch.export.Dim) for faster evaluation"
        )
    return module, state, tuple(int(d) for d in shape[1:]), notes


# -- graphs that are a zoo model -------------------------------------------------------------------
def as_eager(
    opaque: nn.Module, state: dict, arch: str | None, name: str, notes: list[str]
) -> tuple[str, nn.Module] | None:
    """The zoo architecture with these weights, if its outputs equal the uploaded graph's."""
    try:
        arch_id, eager, how = fit(state, arch, name)
    except UploadError:
        if arch is not None:
            raise
        return None
    x = torch.randn(1, *zoo_spec(arch_id).input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        b = eager(x)
        try:
            a = opaque(x)
            diff = float((a - b).abs().max()) if a.shape == b.shape else float("inf")
        except RuntimeError as exc:  # e.g. the graph wants another input shape than the zoo model
            diff = float("inf")
            notes.append(f"the uploaded graph does not run on {arch_id}'s input {tuple(x.shape)}: {str(exc)[:120]}")
    if diff > 1e-4 * (1.0 + float(b.abs().max())):
        notes.append(
            f"weights fit {arch_id} but the uploaded graph computes something else (max output difference "
            f"{diff:.3g}): kept as uploaded"
        )
        return None
    notes.append(
        f"{how}; outputs equal the uploaded graph's (max difference {diff:.1e}), so it runs as eager "
        f"{arch_id} and can be pruned and quantized"
    )
    return arch_id, eager
