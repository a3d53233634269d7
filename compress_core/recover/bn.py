"""BatchNorm re-estimation: recompute every BatchNorm's running statistics on calibration images.

Pruning and quantization shift the distribution of every activation, while the BatchNorm layers keep
normalising with the dense model's statistics; recomputing them on a few hundred to a few thousand
training images recovers much of the loss at the cost of a forward pass (AdaBN, Li et al. 2016; the
BN re-estimation of Nagel et al. 2021, "A White Paper on Neural Network Quantization", and of pruning
work such as EagleEye, Li et al. 2020). ``reestimate_`` is the plain form: a cumulative average over
the batches (``momentum=None``) from a forward pass with only the BatchNorm layers in training mode
(dropout and the like stay in eval mode), under ``no_grad``; the model ends in eval mode.

``anchored_reestimate_`` (what the ``bn`` level runs) corrects the dense model's statistics by the
*change* compression causes on the calibration images instead of replacing them:
``mean = mean_dense + (mean_cal(compressed) - mean_cal(dense))`` and
``var = var_dense * var_cal(compressed) / var_cal(dense)``, per (matched) channel. The checkpoints'
statistics were accumulated on *augmented* training images (random crops with zero padding, flips);
re-estimating them on plain calibration images alone moves them to another distribution: on the dense
ResNet-20 that alone costs 2.8 pp (91.65 % -> 88.8 % on 2,000 test images), while the anchored form
leaves a dense model exactly as it was (both calibration terms cancel) and needs no knowledge of the
training augmentation. Channels of a structurally pruned BatchNorm are matched to the dense ones by
their affine parameters (``channels.bn_channels``); a BatchNorm that cannot be matched gets the plain
estimate. Weights are never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .channels import bn_channels

_BN = nn.modules.batchnorm._BatchNorm
_TINY = 1e-12


def batchnorms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The BatchNorm layers that keep running statistics."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BN) and m.track_running_stats]


def reestimate_(model: nn.Module, images: Sequence[torch.Tensor]) -> int:
    """Recompute the running mean/var of every BatchNorm of ``model`` on ``images``; returns how many."""
    bns = batchnorms(model)
    saved = [(m, m.momentum) for _, m in bns]
    model.eval()
    try:
        for _, m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch counts equally
            m.train()
        with torch.no_grad():
            for x in images:
                model(x)
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()
    return len(bns)


def anchored_reestimate_(model: nn.Module, dense: nn.Module, images: Sequence[torch.Tensor]) -> list[str]:
    """Shift ``model``'s BatchNorm statistics by the change compression causes (module docstring);
    ``dense`` is only read (a copy is measured). Returns the names of BatchNorms estimated plainly."""
    ref = copy.deepcopy(dense).eval()
    base = {n: (m.running_mean.clone(), m.running_var.clone()) for n, m in batchnorms(ref)}
    reestimate_(ref, images)
    reestimate_(model, images)
    ref_bns = dict(batchnorms(ref))
    plain = []
    with torch.no_grad():
        for name, bn in batchnorms(model):
            idx = bn_channels(bn, ref_bns[name]) if name in ref_bns else None
            if idx is None:
                plain.append(name)
                continue
            mean0, var0 = base[name]
            cal = ref_bns[name]
            ratio = bn.running_var / cal.running_var[idx].clamp(min=_TINY)
            var = torch.where(cal.running_var[idx] > _TINY, var0[idx] * ratio, bn.running_var)
            bn.running_mean.copy_(mean0[idx] + bn.running_mean - cal.running_mean[idx])
            bn.running_var.copy_(var)
    return plain
