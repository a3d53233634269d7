"""Per-weight importance scores for unstructured pruning: higher means keep.

One function per criterion, registered by its short key. Each takes the model, the list of
(name, module) layers to score, and optional calibration data, and returns one score tensor per
layer with the weight's shape. Scores are computed on a deep copy's weights and never change them.

- ``random``: uniform noise (a baseline every criterion should beat).
- ``l1``/``l2``: |w| and w^2. For single weights they rank identically; they differ for groups
  (structured pruning), where the sum of |w| and the sum of w^2 over a filter are not monotone.
- ``taylor``: first-order Taylor estimate of the loss change from removing w, |w * dL/dw|,
  accumulated over calibration batches (Molchanov et al. 2019).
- ``activation``: |w| times the L2 norm of the input feature it multiplies, over calibration
  batches (Wanda, Sun et al. 2023): a weight on a dead or tiny input matters little.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Layers = Sequence[tuple[str, nn.Module]]
ScoreFn = Callable[..., list[torch.Tensor]]
IMPORTANCE: dict[str, ScoreFn] = {}
NEEDS_DATA = {"taylor", "activation"}


def register(key: str) -> Callable[[ScoreFn], ScoreFn]:
    def wrap(fn: ScoreFn) -> ScoreFn:
        IMPORTANCE[key] = fn
        return fn
    return wrap


@register("random")
def random_scores(model: nn.Module, layers: Layers, seed: int = 0, **_: object) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(m.weight.shape, generator=g) for _, m in layers]


@register("l1")
def l1_scores(model: nn.Module, layers: Layers, **_: object) -> list[torch.Tensor]:
    return [m.weight.detach().abs().clone() for _, m in layers]


@register("l2")
def l2_scores(model: nn.Module, layers: Layers, **_: object) -> list[torch.Tensor]:
    return [m.weight.detach().pow(2) for _, m in layers]


@register("taylor")
def taylor_scores(model: nn.Module, layers: Layers, batches: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
                  **_: object) -> list[torch.Tensor]:
    if not batches:
        raise ValueError("the taylor criterion needs labelled calibration batches (training data)")
    scores = [torch.zeros_like(m.weight) for _, m in layers]
    was_training = model.training
    model.eval()  # BN statistics stay fixed: we want the gradient of the deployed model
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            for s, (_, m) in zip(scores, layers, strict=True):
                s += (m.weight.detach() * m.weight.grad).abs()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [s / len(batches) for s in scores]


@register("activation")
def activation_scores(model: nn.Module, layers: Layers, batches: Sequence[torch.Tensor] | None = None,
                      **_: object) -> list[torch.Tensor]:
    if not batches:
        raise ValueError("the activation criterion needs calibration batches (training images)")
    sq_norms: dict[int, torch.Tensor] = {}

    def hook(idx: int) -> Callable:
        def fn(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach()
            # Per input feature: sum of squares over batch and spatial positions.
            per_feature = x.pow(2).sum(dim=[d for d in range(x.dim()) if d != 1]) if x.dim() > 2 else x.pow(2).sum(0)
            sq_norms[idx] = sq_norms.get(idx, 0) + per_feature
        return fn

    forward_and_unhook(model, batches, [m.register_forward_pre_hook(hook(i)) for i, (_, m) in enumerate(layers)])
    scores = []
    for i, (name, m) in enumerate(layers):
        if i not in sq_norms:
            raise ValueError(f"layer {name} never ran on the calibration data")
        norm = sq_norms[i].sqrt()
        w = m.weight.detach().abs()
        if isinstance(m, nn.Conv2d):
            groups = m.groups
            norm = norm.view(groups, -1)  # input channels seen by each group
            per_out = norm.repeat_interleave(m.out_channels // groups, dim=0)  # (out, in/groups)
            scores.append(w * per_out[:, :, None, None])
        else:
            scores.append(w * norm[None, :])
    return scores


def forward_and_unhook(model: nn.Module, batches: Sequence, handles: Sequence) -> None:
    """Run calibration ``batches`` (images, or (images, labels) pairs) through ``model`` without
    gradients so that its hooks collect statistics, then remove ``handles`` whatever happens."""
    try:
        with torch.no_grad():
            for x in batches:
                model(x[0] if isinstance(x, (tuple, list)) else x)
    finally:
        for h in handles:
            h.remove()


def compute(criterion: str, model: nn.Module, layers: Layers, **kwargs: object) -> list[torch.Tensor]:
    try:
        fn = IMPORTANCE[criterion]
    except KeyError:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of: {', '.join(IMPORTANCE)}") from None
    return fn(model, layers, **kwargs)
