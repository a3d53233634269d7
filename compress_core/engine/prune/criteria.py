"""Importance criteria: one registered class per criterion, scoring single weights (unstructured
pruning) and channel groups (structured pruning). Higher scores mean keep.

Adding a criterion is one class with its vocabulary (``key``, ``label``, ``description``, ``needs``) and
the two scoring methods, decorated with ``@register``, plus its key in ``base.recipe.CRITERIA`` (the
recipe's schema) and its test. ``CRITERIA`` (a ``base.registry.Registry``) maps the recipe's criterion
key to the instance; the dashboard and the command line read the words from it.

- ``random``: uniform noise (a baseline every criterion should beat).
- ``l1``/``l2``: |w| and w^2. For single weights they rank identically; for groups (torch-pruning's
  group magnitude, p = 1/2, over every weight a channel touches) the sums are not monotone.
- ``taylor``: weights: |w * dL/dw| over labelled calibration batches; channels: (sum of a * dL/da)^2
  per batch (Molchanov et al. 2019). BN statistics stay fixed (the deployed model's gradient).
- ``activation``: weights: |w| times the L2 norm of the input feature it multiplies (Wanda, Sun et
  al. 2023); channels: the mean of max(a, 0), the average activation passed on through a ReLU.

- ``entropy``: channels: the entropy of the channel's spatially averaged activation over the
  calibration images (Luo & Wu 2017); low entropy means little information, so those channels go
  first. Weights (the stated per-channel rule): |w| times the entropy of the input channel (feature)
  the weight multiplies, so weights reading an uninformative input go first. Some texts use the
  opposite convention (prune the *high*-entropy channels); PruneScope follows Luo & Wu.

Group scores are divided by their group's mean so that groups compare in global scope.
Every score is computed on the model given (callers pass a deep copy) and never changes its weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from compress_core.base.records import Calibration
from compress_core.base.registry import Registry
from compress_core.engine.prune.group_stats import (
    activation_stats,
    channel_entropy,
    entropy_stats,
    forward_and_unhook,
    pooled,
    stats_importance,
    taylor_stats,
)
from compress_core.engine.prune.layers import Layers, Prunable


class Criterion:
    """Base class: ``needs`` is None, "images" (calibration images) or "labels" (labelled batches)."""

    key: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    needs: ClassVar[str | None] = None

    def weight_scores(self, model: nn.Module, layers: Layers, calib: Calibration, seed: int) -> list[torch.Tensor]:
        raise NotImplementedError

    def group_scores(self, model: nn.Module, groups: list, calib: Calibration, seed: int) -> list[torch.Tensor | None]:
        raise NotImplementedError

    def check(self, calib: Calibration) -> None:
        """A specific error when the data this criterion needs is absent."""
        if self.needs == "labels" and not calib.labelled:
            raise ValueError(
                f"the {self.key} criterion needs training data (labelled batches), which is not "
                "available for this model"
            )
        if self.needs == "images" and not calib.images:
            raise ValueError(
                f"the {self.key} criterion needs training data (calibration images), which is not "
                "available for this model"
            )


CRITERIA: Registry[Criterion] = Registry("criterion")
register = CRITERIA.register


def get(key: str) -> Criterion:
    try:
        return CRITERIA[key]
    except KeyError:
        raise ValueError(f"unknown criterion {key!r}; choose one of: {', '.join(CRITERIA)}") from None


def needs_data(key: str) -> bool:
    return get(key).needs is not None


def weight_scores(key: str, model: nn.Module, layers: Layers, calib: Calibration, seed: int = 0) -> list[torch.Tensor]:
    """Per-weight scores of ``layers`` (one tensor per layer, the weight's shape)."""
    criterion = get(key)
    criterion.check(calib)
    return criterion.weight_scores(model, layers, calib, seed)


def group_scores(
    key: str, model: nn.Module, groups: list, calib: Calibration, seed: int = 0
) -> list[torch.Tensor | None]:
    """Per-channel scores of every torch-pruning group, each divided by its mean (None: unscorable)."""
    criterion = get(key)
    criterion.check(calib)
    raw = criterion.group_scores(model, groups, calib, seed)
    return [None if s is None else (s / s.mean() if s.mean() > 0 else s).detach().float().cpu() for s in raw]


def _magnitude_groups(p: int) -> Callable[[list], list[torch.Tensor | None]]:
    import torch_pruning as tp

    imp = tp.importance.GroupMagnitudeImportance(p=p, normalizer=None)
    return lambda groups: [imp(g) for g in groups]


@register
class Random(Criterion):
    key = "random"
    label = "Random (baseline)"
    description = "Uniform noise: the baseline every criterion should beat."

    def weight_scores(self, model: nn.Module, layers: Layers, calib: Calibration, seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [torch.rand(m.weight.shape, generator=g) for _, m in layers]

    def group_scores(self, model: nn.Module, groups: list, calib: Calibration, seed: int) -> list[torch.Tensor | None]:
        return [torch.rand(len(g[0][1])) for g in groups]  # seeded by the caller's fork_rng


@register
class L1(Criterion):
    key = "l1"
    label = "Magnitude |w| (L1)"
    description = "The weight's magnitude |w|; for channels, the L1 norm of every weight the channel touches."

    def weight_scores(self, model: nn.Module, layers: Layers, calib: Calibration, seed: int) -> list[torch.Tensor]:
        return [m.weight.detach().abs().clone() for _, m in layers]

    def group_scores(self, model: nn.Module, groups: list, calib: Calibration, seed: int) -> list[torch.Tensor | None]:
        return _magnitude_groups(1)(groups)


@register
class L2(Criterion):
    key = "l2"
    label = "Magnitude w² (L2)"
    description = "The squared weight w²; for channels, the L2 norm of every weight the channel touches."

    def weight_scores(self, model: nn.Module, layers: Layers, calib: Calibration, seed: int) -> list[torch.Tensor]:
        return [m.weight.detach().pow(2) for _, m in layers]

    def group_scores(self, model: nn.Module, groups: list, calib: Calibration, seed: int) -> list[torch.Tensor | None]:
        return _magnitude_groups(2)(groups)


@register
class Taylor(Criterion):
    key = "taylor"
    label = "Gradient (Taylor |w·∂L/∂w|)"
    description = (
        "|w · ∂L/∂w| over labelled training batches; for channels, the squared sum of activation times its "
        "gradient (Molchanov et al. 2019)."
    )
    needs = "labels"

    def weight_scores(self, model: nn.Module, layers: Layers, calib: Calibration, seed: int) -> list[torch.Tensor]:
        scores = [torch.zeros_like(m.weight) for _, m in layers]
        was_training = model.training
        model.eval()  # BN statistics stay fixed: we want the gradient of the deployed model
        try:
            for x, y in calib.labelled:
                model.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                for s, (name, m) in zip(scores, layers, strict=True):
                    if m.weight.grad is None:
                        raise ValueError(f"taylor needs a gradient for {name}, which the loss does not reach")
                    s += (m.weight.detach() * m.weight.grad).abs()
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        return [s / len(calib.labelled) for s in scores]

    def group_scores(self, model: nn.Module, groups: list, calib: Calibration, seed: int) -> list[torch.Tensor | None]:
        imp = stats_importance(taylor_stats(model, calib.labelled))
        return [imp(g) for g in groups]


@register
class Activation(Criterion):
    key = "activation"
    label = "Activation (|w|·‖x‖)"
    description = (
        "|w| times the norm of the input it multiplies (Wanda); for channels, the mean activation passed on "
        "through a ReLU, over training images."
    )
    needs = "images"

    def weight_scores(self, model: nn.Module, layers: Layers, calib: Calibration, seed: int) -> list[torch.Tensor]:
        norms = _input_norms(model, layers, calib.images)
        return [_wanda(m, norms[name]) for name, m in layers]

    def group_scores(self, model: nn.Module, groups: list, calib: Calibration, seed: int) -> list[torch.Tensor | None]:
        imp = stats_importance(activation_stats(model, calib.images))
        return [imp(g) for g in groups]


@register
class Entropy(Criterion):
    key = "entropy"
    label = "Entropy of activations"
    description = (
        "The entropy of a channel's activations over training images (Luo & Wu 2017): low-entropy channels, "
        "and the weights that read them, go first."
    )
    needs = "images"

    def weight_scores(self, model: nn.Module, layers: Layers, calib: Calibration, seed: int) -> list[torch.Tensor]:
        entropy = _input_entropy(model, layers, calib.images)
        return [_per_input(m, m.weight.detach().abs(), entropy[name]) for name, m in layers]

    def group_scores(self, model: nn.Module, groups: list, calib: Calibration, seed: int) -> list[torch.Tensor | None]:
        imp = stats_importance(entropy_stats(model, calib.images))
        return [imp(g) for g in groups]


def _layer_inputs(
    model: nn.Module, layers: Layers, batches: Sequence[torch.Tensor], per_batch: Callable[[torch.Tensor], torch.Tensor]
) -> dict[str, list[torch.Tensor]]:
    """``per_batch(input)`` of every layer for each calibration batch, collected with forward pre-hooks."""
    seen: dict[str, list[torch.Tensor]] = {}

    def hook(name: str) -> Callable:
        def fn(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            seen.setdefault(name, []).append(per_batch(inputs[0].detach()))

        return fn

    forward_and_unhook(model, batches, [m.register_forward_pre_hook(hook(n)) for n, m in layers])
    missing = [n for n, _ in layers if n not in seen]
    if missing:
        raise ValueError(f"layer {missing[0]} never ran on the calibration data")
    return seen


def _input_entropy(model: nn.Module, layers: Layers, batches: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Entropy of every input feature (channel) of each layer across the calibration images."""
    seen = _layer_inputs(model, layers, batches, pooled)
    return {n: channel_entropy(torch.cat(v)) for n, v in seen.items()}


def _input_norms(model: nn.Module, layers: Layers, batches: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """L2 norm of every input feature (channel) of each layer over the calibration batches."""

    def sum_of_squares(x: torch.Tensor) -> torch.Tensor:  # per input feature, over batch and positions
        return x.pow(2).sum(dim=[d for d in range(x.dim()) if d != 1]) if x.dim() > 2 else x.pow(2).sum(0)

    seen = _layer_inputs(model, layers, batches, sum_of_squares)
    return {n: torch.stack(v).sum(0).sqrt() for n, v in seen.items()}


def _wanda(m: Prunable, norm: torch.Tensor) -> torch.Tensor:
    """|w| times the norm of the input it multiplies."""
    return _per_input(m, m.weight.detach().abs(), norm)


def _per_input(m: Prunable, w: torch.Tensor, per_feature: torch.Tensor) -> torch.Tensor:
    """``w`` scaled by a value per input feature (grouped convs: the inputs each group sees)."""
    if isinstance(m, nn.Conv2d):
        groups = m.groups
        per_group = per_feature.view(groups, -1)  # input channels seen by each group
        per_out = per_group.repeat_interleave(m.out_channels // groups, dim=0)  # (out, in/groups)
        return w * per_out[:, :, None, None]
    return w * per_feature[None, :]
