"""Unstructured pruning: zero single weights by importance, layer-wise or with one global threshold.

The masks are computed from scores (see ``importance``) by ranking, not by a float threshold, so
the number of removed weights is exact: ``round(sparsity * n)`` per layer (layer scope) or over
all prunable weights together (global scope). Ties are broken by position, deterministically.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..recipe import PruneSpec

PRUNABLE = (nn.Conv2d, nn.Linear)


def prunable_layers(model: nn.Module, skip: Sequence[str] = ()) -> list[tuple[str, nn.Module]]:
    """Conv2d and Linear layers in module order, minus ``skip``.

    ``skip`` holds layer names; ``"first"`` means the first Conv2d (it sees raw pixels) and
    ``"last"`` the final Linear (it makes the logits), as is customary. A name that matches no
    layer raises, so a typo never silently prunes a layer the user meant to keep.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    names = {n for n, _ in layers}
    drop = set()
    for s in skip:
        if s == "first":
            convs = [n for n, m in layers if isinstance(m, nn.Conv2d)]
            drop.update(convs[:1])
        elif s == "last":
            linears = [n for n, m in layers if isinstance(m, nn.Linear)]
            drop.update(linears[-1:])
        elif s in names:
            drop.add(s)
        else:
            raise ValueError(f"skip names a layer {s!r} that the model does not have; layers: {', '.join(sorted(names))}")
    return [(n, m) for n, m in layers if n not in drop]


def _bottom_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean keep-mask that drops exactly the ``k`` lowest scores."""
    flat = scores.flatten()
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k > 0:
        order = torch.argsort(flat, stable=True)
        keep[order[:k]] = False
    return keep.view_as(scores)


def masks_from_scores(layers: Sequence[tuple[str, nn.Module]], scores: Sequence[torch.Tensor],
                      spec: PruneSpec, global_order: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Keep-masks per layer name. ``global_order`` (argsort of all scores concatenated) may be
    passed in to reuse one sort across many sparsities."""
    overrides = dict(spec.layer_sparsity)
    unknown = set(overrides) - {n for n, _ in layers}
    if unknown:
        raise ValueError(f"layer_sparsity names layer(s) not prunable here: {', '.join(sorted(unknown))}")
    masks: dict[str, torch.Tensor] = {}
    global_idx = [i for i, (n, _) in enumerate(layers) if n not in overrides]
    if spec.scope == "global" and global_idx:
        sizes = [scores[i].numel() for i in global_idx]
        if global_order is None or len(global_idx) != len(layers):
            global_order = torch.argsort(torch.cat([scores[i].flatten() for i in global_idx]), stable=True)
        k = round(spec.sparsity * sum(sizes))
        keep = torch.ones(sum(sizes), dtype=torch.bool)
        keep[global_order[:k]] = False
        for i, part in zip(global_idx, torch.split(keep, sizes), strict=True):
            masks[layers[i][0]] = part.view_as(scores[i])
    for i, (name, _) in enumerate(layers):
        if name in masks:
            continue
        s = overrides.get(name, spec.sparsity)
        masks[name] = _bottom_k_mask(scores[i], round(s * scores[i].numel()))
    return masks


def apply_masks_(layers: Sequence[tuple[str, nn.Module]], masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights in place (the trailing underscore: this mutates ``layers``)."""
    with torch.no_grad():
        for name, module in layers:
            if name in masks:
                module.weight.mul_(masks[name].to(module.weight.dtype))
