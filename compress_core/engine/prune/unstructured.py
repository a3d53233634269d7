"""Unstructured pruning: zero single weights by importance, layer-wise or with one global threshold.

The masks are computed from scores (see ``criteria``) by ranking, not by a float threshold, so
the number of removed weights is exact: ``round(sparsity * n)`` per layer (layer scope) or over
all prunable weights together (global scope). Ties are broken by position, deterministically.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from compress_core.base.recipe import PruneSpec
from compress_core.engine.prune import criteria
from compress_core.engine.prune.kinds import PruneContext, Pruned, Pruner, register
from compress_core.engine.prune.layers import PRUNABLE, Prunable, prunable_layers

__all__ = ["PRUNABLE", "UnstructuredPruner", "apply_masks_", "masks_from_scores", "prunable_layers"]


def _bottom_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean keep-mask that drops exactly the ``k`` lowest scores."""
    flat = scores.flatten()
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k > 0:
        order = torch.argsort(flat, stable=True)
        keep[order[:k]] = False
    return keep.view_as(scores)


def masks_from_scores(
    layers: Sequence[tuple[str, nn.Module]],
    scores: Sequence[torch.Tensor],
    spec: PruneSpec,
    global_order: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
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


def apply_masks_(layers: Sequence[tuple[str, Prunable]], masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights in place (the trailing underscore: this mutates ``layers``)."""
    with torch.no_grad():
        for name, module in layers:
            if name in masks:
                module.weight.mul_(masks[name].to(module.weight.dtype))


def _layers(model: nn.Module, spec: PruneSpec) -> list[tuple[str, Prunable]]:
    layers = prunable_layers(model, spec.skip)
    if not layers:
        raise ValueError("this model has no prunable Conv2d/Linear layer left after the skip list")
    return layers


@register
class UnstructuredPruner(Pruner):
    """Single weights by importance score; the zeros stay in dense tensors (same kernels, same speed)."""

    key = "unstructured"
    label = "Unstructured (weights)"
    description = "Zero single weights: high compression, same speed on stock kernels."
    note = "unstructured zeros are stored in dense tensors: same kernels and latency as dense"

    def prune_(self, model: nn.Module, spec: PruneSpec, ctx: PruneContext) -> Pruned:
        layers = _layers(model, spec)
        if ctx.scores is not None:
            scores, order = ctx.scores(layers, spec)
        else:
            scores, order = criteria.weight_scores(spec.criterion, model, layers, ctx.calib, spec.seed), None
        masks = masks_from_scores(layers, scores, spec, global_order=order)
        apply_masks_(layers, masks)
        return Pruned(masks=masks)

    def step_(
        self, model: nn.Module, target: PruneSpec, previous: PruneSpec | None, state: Pruned, ctx: PruneContext
    ) -> Pruned:
        """Re-score the current weights; already-pruned weights score -inf so they stay pruned."""
        layers = _layers(model, target)
        scores = criteria.weight_scores(target.criterion, model, layers, ctx.calib, target.seed)
        old = state.masks
        if old:
            scores = [s.masked_fill(~old[n], float("-inf")) for s, (n, _) in zip(scores, layers, strict=True)]
        masks = masks_from_scores(layers, scores, target)
        if old:
            masks = {n: m & old[n] for n, m in masks.items()}
        apply_masks_(layers, masks)
        return Pruned(masks=masks, structure=state.structure)
