"""The one way to rebuild a structurally pruned architecture.

``skeleton(model)`` records, as JSON-able data, every shape structured pruning can change (Conv2d,
Linear, BatchNorm2d, ChannelScatter) and the planes of option-A ``PadShortcut`` modules;
``apply_skeleton_(dense_model, skel)`` gives a freshly built dense model those shapes (with fresh
weights: load the pruned state_dict next). An entry may name a module of another type: a
``ChannelScatter`` entry at a ``PadShortcut`` swaps it (without ``src``/``dst`` it gets the
PadShortcut's own channel mapping). Structured pruning stores the skeleton in its report; the
artefact derives it from its header and stored tensors (``compress_core.files.artifact.architecture``).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from compress_core.engine.prune.scatter import ChannelScatter
from compress_core.models.cifar_resnet import PadShortcut


def skeleton(model: nn.Module) -> dict[str, dict]:
    """The shapes that structured pruning changes, as JSON-able data: enough to rebuild the pruned
    architecture from the dense one with ``apply_skeleton_`` (then load the pruned state_dict)."""
    out: dict[str, dict] = {}
    for name, m in model.named_modules():
        spec = module_skeleton(m)
        if spec is not None:
            out[name] = spec
    return out


def module_skeleton(m: nn.Module) -> dict | None:
    """One module's skeleton entry (None for modules whose shape pruning does not change)."""
    if isinstance(m, nn.Conv2d):
        return {"type": "Conv2d", "in": m.in_channels, "out": m.out_channels, "groups": m.groups}
    if isinstance(m, nn.Linear):
        return {"type": "Linear", "in": m.in_features, "out": m.out_features}
    if isinstance(m, nn.BatchNorm2d):
        return {"type": "BatchNorm2d", "out": m.num_features}
    if isinstance(m, ChannelScatter):
        return {
            "type": "ChannelScatter",
            "in": m.in_planes,
            "out": m.out_planes,
            "src": m.src.tolist(),
            "dst": m.dst.tolist(),
        }
    if isinstance(m, PadShortcut):
        return {"type": "PadShortcut", "in": int(m.in_planes), "out": int(m.out_planes)}
    return None


def _maps(spec: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if "src" not in spec and "dst" not in spec:
        return None, None  # PadShortcut's mapping
    return torch.tensor(spec["src"], dtype=torch.long), torch.tensor(spec["dst"], dtype=torch.long)


def _resized(m: nn.Module, spec: dict) -> nn.Module:
    # a Conv2d, Linear or BatchNorm2d entry is recorded at a module of that type: cast says so to the checker
    if spec["type"] == "Conv2d":
        conv = cast(nn.Conv2d, m)
        # torch types a Conv2d's stored geometry as tuple[int, ...] and its constructor's as tuple[int, int]
        return nn.Conv2d(
            spec["in"],
            spec["out"],
            conv.kernel_size,  # type: ignore[arg-type]
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            conv.dilation,  # type: ignore[arg-type]
            spec["groups"],
            conv.bias is not None,
            conv.padding_mode,
        )
    if spec["type"] == "Linear":
        return nn.Linear(spec["in"], spec["out"], m.bias is not None)
    if spec["type"] == "BatchNorm2d":
        bn = cast(nn.BatchNorm2d, m)
        return nn.BatchNorm2d(spec["out"], bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if spec["type"] == "ChannelScatter":
        return ChannelScatter(spec["in"], spec["out"], *_maps(spec))
    if spec["type"] == "PadShortcut":
        return PadShortcut(spec["in"], spec["out"])
    raise ValueError(f"unknown layer type {spec['type']!r} in a pruned-model skeleton")


def apply_skeleton_(model: nn.Module, skel: dict[str, dict]) -> nn.Module:
    """Give the dense ``model`` the pruned shapes of ``skel`` (fresh weights: load the state_dict next)."""
    for name, spec in skel.items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"the pruned skeleton names layer {name!r}, which this model does not have") from None
        parent_name, _, attr = name.rpartition(".")
        new = _resized(old, spec).train(old.training)
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    return model
