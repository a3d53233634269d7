"""Statistics collected with forward hooks on calibration data, and torch-pruning glue to score
channel groups by them.

- ``forward_and_unhook``: run calibration batches without gradients, then remove the hooks.
- ``activation_stats``: mean of max(output, 0) per output channel of every Conv/Linear/BatchNorm.
- ``taylor_stats``: Molchanov et al. 2019 per output channel, (sum of a * dL/da)^2 summed over batches.
- ``entropy_stats`` / ``channel_entropy``: Luo & Wu 2017, the entropy of each channel's distribution of
  spatially averaged activations over the calibration images (``ENTROPY_BINS`` equal-width bins).
- ``stats_importance``: a torch-pruning Importance that scores a group's channels by such per-module
  statistics, averaging over the layers producing the channel (their BatchNorms where the group has some).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PRODUCERS = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)
ENTROPY_BINS = 32  # bins of the per-channel histogram over calibration images (256 images by default)
ChannelStats = dict[nn.Module, torch.Tensor]


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


def per_channel(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the channel dimension (1)."""
    return t.sum(dim=[d for d in range(t.dim()) if d != 1])


def hook_producers(model: nn.Module, hook: Callable) -> list:
    return [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRODUCERS)]


def activation_stats(model: nn.Module, calib: Sequence[torch.Tensor]) -> ChannelStats:
    """Mean of max(output, 0) per output channel of every Conv/Linear/BatchNorm over the calibration
    batches: the average activation the channel passes on through a ReLU."""
    sums: dict[nn.Module, torch.Tensor] = {}
    counts: dict[nn.Module, int] = {}

    def hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        sums[module] = sums.get(module, 0) + per_channel(out.detach().clamp(min=0))
        counts[module] = counts.get(module, 0) + out.numel() // out.shape[1]

    forward_and_unhook(model, calib, hook_producers(model, hook))
    return {m: s / counts[m] for m, s in sums.items()}


def pooled(t: torch.Tensor) -> torch.Tensor:
    """(batch, channels): each channel's activation averaged over its spatial positions, per image."""
    return t.flatten(2).mean(2) if t.dim() > 2 else t


def channel_entropy(values: torch.Tensor, bins: int = ENTROPY_BINS) -> torch.Tensor:
    """Entropy (nats) per column of ``values`` (images × channels): a histogram of the column's values
    in ``bins`` equal-width bins between its min and max. A constant channel has entropy 0."""
    v = values.double()
    lo, hi = v.min(0).values, v.max(0).values
    width = (hi - lo).clamp(min=1e-12)
    idx = ((v - lo) / width * bins).long().clamp(0, bins - 1)
    counts = torch.zeros(bins, v.shape[1], dtype=torch.float64).scatter_add_(0, idx, torch.ones_like(v))
    p = counts / v.shape[0]
    h = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(0)
    return torch.where(hi > lo, h, torch.zeros_like(h)).float()


def entropy_stats(model: nn.Module, calib: Sequence[torch.Tensor]) -> ChannelStats:
    """Per output channel of every Conv/Linear/BatchNorm: the entropy of max(output, 0) averaged over
    positions, across the calibration images (Luo & Wu 2017: a channel whose response hardly varies
    between images carries little information)."""
    seen: dict[nn.Module, list[torch.Tensor]] = {}

    def hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        seen.setdefault(module, []).append(pooled(out.detach().clamp(min=0)))

    forward_and_unhook(model, calib, hook_producers(model, hook))
    return {m: channel_entropy(torch.cat(v)) for m, v in seen.items()}


def taylor_stats(model: nn.Module, labelled: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> ChannelStats:
    """Molchanov et al. 2019 (Taylor FO on the layer outputs): per batch, (sum over positions of
    a * dL/da)^2 for every output channel a, summed over batches. Squaring per batch keeps gradients
    of opposite sign from cancelling; it estimates the loss change of switching the channel off."""
    sums: dict[nn.Module, torch.Tensor] = {}

    def hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        act = out.detach()

        def on_grad(grad: torch.Tensor) -> None:
            sums[module] = sums.get(module, 0) + per_channel(act * grad).pow(2)

        out.register_hook(on_grad)

    model.eval()  # gradient of the deployed model: BN statistics stay fixed
    handles = hook_producers(model, hook)
    try:
        for x, y in labelled:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    return sums


def stats_importance(stats: ChannelStats) -> Any:
    """A torch-pruning Importance from per-module output-channel statistics: per channel of a group,
    the mean over the layers producing it (their BatchNorms when the group has BatchNorms)."""
    import torch_pruning as tp

    fn = tp.pruner.function
    out_fns = {
        fn.prune_conv_out_channels,
        fn.prune_linear_out_channels,
        fn.prune_batchnorm_out_channels,
        fn.prune_depthwise_conv_out_channels,
    }

    class StatsImportance(tp.importance.GroupMagnitudeImportance):
        @torch.no_grad()
        def __call__(self, group: Any) -> torch.Tensor | None:
            found = [
                (dep.target.module, idxs, group[i].root_idxs)
                for i, (dep, idxs) in enumerate(group)
                if dep.handler in out_fns and dep.target.module in stats
            ]
            bns = [f for f in found if isinstance(f[0], nn.modules.batchnorm._BatchNorm)]
            use = bns or found
            if not use:
                return None
            return self._reduce([stats[m][idxs] for m, idxs, _ in use], [r for _, _, r in use])

    return StatsImportance()
