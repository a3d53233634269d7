"""The architecture of a stored model: what the header says about it, and its rebuild.

A file names its zoo architecture (``model_id`` plus a fingerprint of the unpruned module tree), the
module swaps structured pruning made (``replaced``: PadShortcut -> ChannelScatter) and the planes of
the remaining option-A shortcuts (``modules``); every other shape is the shape of a stored tensor.
The loader rebuilds in two steps, both through ``prune.skeleton.apply_skeleton_``:

1. ``reference(model_id, header)``: the base architecture with the stored swaps; every stored tensor
   must fit it (same keys in order; pruning only shrinks tensors).
2. ``stored_skeleton(model, shapes, state, planes)``: the skeleton of the stored model, derived from
   the tensors (Conv2d/Linear/BatchNorm2d from their shapes, ChannelScatter from its index maps);
   ``rebuild_(model, skel)`` applies the entries that differ, then the state_dict loads.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import torch
from torch import nn

from compress_core import models
from compress_core.engine.prune.scatter import ChannelScatter
from compress_core.engine.prune.skeleton import apply_skeleton_, module_skeleton, skeleton
from compress_core.files.artifact.errors import ArtifactError, field
from compress_core.models.cifar_resnet import PadShortcut

SWAPS = {("PadShortcut", "ChannelScatter")}  # module swaps structured pruning makes, which the loader redoes
SHORTCUT_FIELDS = ("in_planes", "out_planes")  # the ``modules`` record of a PadShortcut
MAX_PLANES = 1 << 20


@lru_cache(maxsize=16)
def _base(model_id: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Fingerprint and (name, type) of every module of the unpruned architecture."""
    kinds = tuple((n, type(m).__name__) for n, m in models.build(model_id).named_modules())
    return hashlib.sha256(";".join(f"{n}:{t}" for n, t in kinds).encode()).hexdigest()[:16], kinds


def fingerprint(model_id: str) -> str:
    return _base(model_id)[0]


# -- writing -----------------------------------------------------------------------------------
def swaps(fm: nn.Module, model_id: str) -> dict[str, str]:
    """Modules whose type differs from the base architecture's (only ``SWAPS``; else ValueError)."""
    base = _base(model_id)[1]
    kinds = tuple((n, type(m).__name__) for n, m in fm.named_modules())
    if [n for n, _ in kinds] != [n for n, _ in base]:
        raise ValueError(
            f"the compressed model's modules differ from {model_id}'s (added or removed); "
            "the artefact format stores channel counts and known module swaps only"
        )
    out = {}
    for (name, kind), (_, base_kind) in zip(kinds, base, strict=True):
        if kind != base_kind:
            if (base_kind, kind) not in SWAPS:
                raise ValueError(
                    f"module {name!r} was changed from {base_kind} to {kind}, which the artefact "
                    f"format cannot rebuild (known swaps: {sorted(SWAPS)})"
                )
            out[name] = kind
    return out


def shortcut_planes(fm: nn.Module) -> dict[str, dict[str, int]]:
    """The ``modules`` header field: the planes of every PadShortcut (parameter-free, so not a tensor)."""
    return {
        name: {"in_planes": spec["in"], "out_planes": spec["out"]}
        for name, spec in skeleton(fm).items()
        if spec["type"] == "PadShortcut"
    }


# -- reading -----------------------------------------------------------------------------------
def reference(model_id: str, header: dict) -> tuple[nn.Module, dict[str, tuple[int, int]]]:
    """The base architecture with the stored swaps, and the stored PadShortcut planes by name."""
    model = models.build(model_id).eval()
    if header.get("arch") != fingerprint(model_id):
        raise ArtifactError(
            f"the stored architecture of {model_id} differs from this version's (fingerprint "
            f"{str(header.get('arch'))[:20]!r} != {fingerprint(model_id)!r})"
        )
    modules = dict(model.named_modules())
    swap_skel = {}
    for name, kind in field(header, "replaced", dict, "header").items():
        if not name or (type(modules.get(name)).__name__, kind) not in SWAPS:
            raise ArtifactError(f"module {str(name)[:80]!r} cannot be replaced by {str(kind)[:40]!r}")
        swap_skel[name] = {"type": kind, "in": modules[name].in_planes, "out": modules[name].out_planes}
    apply_skeleton_(model, swap_skel)
    return model, _planes(model, field(header, "modules", dict, "header"))


def _planes(model: nn.Module, records: dict) -> dict[str, tuple[int, int]]:
    modules = dict(model.named_modules())
    out = {}
    for name, values in records.items():
        if (
            not isinstance(modules.get(name), PadShortcut)
            or not isinstance(values, dict)
            or set(values) != set(SHORTCUT_FIELDS)
        ):
            raise ArtifactError(f"module record {str(name)[:80]!r} does not fit the architecture")
        for attr, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PLANES:
                raise ArtifactError(f"module {name!r}: bad {attr} {value!r}")
        out[name] = (values["in_planes"], values["out_planes"])
    return out


def stored_skeleton(
    model: nn.Module,
    shapes: dict[str, tuple[int, ...]],
    state: dict[str, torch.Tensor],
    planes: dict[str, tuple[int, int]],
) -> dict[str, dict]:
    """The skeleton of the stored model, on the ``reference`` architecture ``model``: tensor ``shapes``
    (every key; the values of float tensors of int8 files are not stored), decoded ``state`` (for
    ChannelScatter's index maps) and the PadShortcut ``planes`` of the header."""
    out = {}
    for name, m in model.named_modules():
        key = f"{name}." if name else ""
        if isinstance(m, nn.Conv2d):
            o, i = shapes[key + "weight"][:2]
            groups = _groups(m, o, i, name)
            out[name] = {"type": "Conv2d", "in": i * groups, "out": o, "groups": groups}
        elif isinstance(m, nn.Linear):
            o, i = shapes[key + "weight"]
            out[name] = {"type": "Linear", "in": i, "out": o}
        elif isinstance(m, nn.BatchNorm2d):
            ref = next((shapes[key + a] for a in ("running_mean", "weight") if key + a in shapes), None)
            out[name] = {"type": "BatchNorm2d", "out": ref[0] if ref is not None else m.num_features}
        elif isinstance(m, ChannelScatter):
            out[name] = _scatter_spec(name, [state.get(key + a) for a in ("src", "dst", "planes")])
        elif isinstance(m, PadShortcut):
            i, o = planes.get(name, (m.in_planes, m.out_planes))
            out[name] = {"type": "PadShortcut", "in": i, "out": o}
    return out


def _groups(m: nn.Conv2d, out_channels: int, in_per_group: int, name: str) -> int:
    """The groups of a stored convolution: 1 stays 1; a grouped (e.g. depthwise) convolution keeps
    its outputs and inputs per group, so pruning removes whole groups."""
    if m.groups == 1:
        return 1
    out_per = m.out_channels // m.groups
    if in_per_group != m.in_channels // m.groups or out_channels % out_per:
        raise ArtifactError(
            f"grouped convolution {name!r} ({m.groups} groups) does not fit a stored weight "
            f"of {out_channels} x {in_per_group} channels"
        )
    return out_channels // out_per


def _scatter_spec(name: str, maps: list[torch.Tensor | None]) -> dict:
    src, dst, planes = maps
    if (
        src is None
        or dst is None
        or planes is None
        or any(t.is_floating_point() for t in (src, dst, planes))
        or planes.shape != (2,)
        or src.dim() != 1
        or src.shape != dst.shape
        or not 0 <= int(planes.min()) <= int(planes.max()) <= MAX_PLANES
    ):
        raise ArtifactError(f"channel scatter {name!r}: bad index maps")
    return {
        "type": "ChannelScatter",
        "in": int(planes[0]),
        "out": int(planes[1]),
        "src": src.tolist(),
        "dst": dst.tolist(),
    }


def rebuild_(model: nn.Module, skel: dict[str, dict]) -> nn.Module:
    """``apply_skeleton_`` for the entries that differ from ``model``'s own (the rest stay as built)."""
    changed = {name: spec for name, spec in skel.items() if module_skeleton(model.get_submodule(name)) != spec}
    return apply_skeleton_(model, changed)
