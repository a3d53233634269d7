"""Which dense channels a structurally pruned layer kept, recovered from the tensors themselves.

torch-pruning removes channels by ``index_select`` with the kept indices in increasing order, so a
pruned layer's output channels are an ordered subset of the dense layer's, and so are the channels of
the BatchNorm after it (sliced with the same indices, and never quantized). ``kept_outputs`` finds
that subset by an order-preserving assignment of least total cost (``monotone_match``, a dynamic
programme over (pruned channel, dense channel)), with the cost taken from, in this order:

1. nothing, when the channel counts are equal (the identity);
2. the BatchNorm that consumes the layer's output: its (weight, bias, running_mean, running_var)
   per channel, exact copies of the dense ones;
3. the weights: row distance when the input count is unchanged, else, per pruned row, the mean over
   a few columns of the distance to the nearest dense kernel (a pruned row is a subset of its dense
   row's kernels). Exact for float weights; approximate once they are quantized.

The match is checked: a residual above ``MAX_RELATIVE_COST`` of the typical cost means "not found",
and the layer is left as it is (the caller says so in its report).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from compress_core.engine.prune.layers import Prunable

_EXACT = "donot_use_mm_for_euclid_dist"  # exact differences: a copied channel costs exactly 0
MAX_RELATIVE_COST = 0.25  # accept a match whose mean cost is below this fraction of a random pairing's
_SAMPLED_COLUMNS = 8


def monotone_match(cost: torch.Tensor) -> torch.Tensor:
    """Strictly increasing ``idx`` (m,) into n >= m columns minimising ``sum_k cost[k, idx[k]]``."""
    m, n = cost.shape
    if m > n:
        raise ValueError(f"cannot match {m} channels into {n}")
    inf = torch.tensor([torch.inf], dtype=cost.dtype)
    D, back = cost[0].clone(), []
    for k in range(1, m):
        best, where = torch.cummin(D, 0)
        D = cost[k] + torch.cat([inf, best[:-1]])
        back.append(torch.cat([torch.tensor([-1]), where[:-1]]))
    idx = torch.empty(m, dtype=torch.long)
    j = int(torch.argmin(D))
    idx[m - 1] = j
    for k in range(m - 1, 0, -1):
        j = int(back[k - 1][j])
        idx[k - 1] = j
    return idx


def running(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The running mean, var and batch count of a BatchNorm that keeps them (``track_running_stats``):
    torch types the three buffers Optional, for the BatchNorms that do not."""
    return (
        cast(torch.Tensor, bn.running_mean),
        cast(torch.Tensor, bn.running_var),
        cast(torch.Tensor, bn.num_batches_tracked),
    )


def _bn_features(bn: _BatchNorm) -> torch.Tensor:
    parts = list(running(bn)[:2]) if bn.running_mean is not None else []
    if bn.weight is not None:
        parts += [bn.weight, bn.bias]
    return torch.stack([p.detach().double() for p in parts], 1)


def _kernels(w: torch.Tensor) -> torch.Tensor:
    return w.detach().double().reshape(w.shape[0], w.shape[1], -1)  # (out, in, kernel)


def _weight_cost(wc: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
    """(out_c, out_d) cost of pairing pruned row p with dense row o from the weights alone."""
    kc, kd = _kernels(wc), _kernels(wd)
    if kc.shape[1] == kd.shape[1]:
        return torch.cdist(kc.flatten(1), kd.flatten(1), compute_mode=_EXACT).square()
    cols = torch.linspace(0, kc.shape[1] - 1, min(_SAMPLED_COLUMNS, kc.shape[1])).round().long().unique()
    dense = kd.reshape(-1, kd.shape[2])  # every dense kernel, (out_d * in_d, kernel)
    out = torch.empty(kc.shape[0], kd.shape[0], dtype=torch.float64)
    for p in range(kc.shape[0]):
        dist = torch.cdist(kc[p, cols], dense, compute_mode=_EXACT).square().view(len(cols), kd.shape[0], kd.shape[1])
        out[p] = dist.amin(2).mean(0)
    return out


def _accept(cost: torch.Tensor, idx: torch.Tensor) -> bool:
    chosen = cost[torch.arange(len(idx)), idx].mean()
    typical = cost.mean()
    return bool(chosen <= MAX_RELATIVE_COST * typical) or bool(typical == 0)


def kept_outputs(
    layer: Prunable, dense_layer: Prunable, bn: _BatchNorm | None = None, dense_bn: _BatchNorm | None = None
) -> tuple[torch.Tensor | None, str]:
    """Indices of the dense output channels ``layer`` kept (None if not found) and how they were found."""
    n_c, n_d = layer.weight.shape[0], dense_layer.weight.shape[0]
    if n_c == n_d:
        return torch.arange(n_c), "same channels"
    if n_c > n_d:
        return None, "has more output channels than the dense layer"
    if (
        bn is not None
        and dense_bn is not None
        and _bn_features(bn).shape[0] == n_c
        and _bn_features(dense_bn).shape[0] == n_d
    ):
        cost = torch.cdist(_bn_features(bn), _bn_features(dense_bn), compute_mode=_EXACT).square()
        how = "matched by the BatchNorm after it"
    else:
        cost = _weight_cost(layer.weight, dense_layer.weight)
        how = "matched by weights"
    idx = monotone_match(cost)
    if not _accept(cost, idx):
        return None, f"could not be matched to the dense layer's channels ({how.split(' ', 1)[1]})"
    exact = bool(cost[torch.arange(n_c), idx].max() == 0)
    return idx, how + (" (exact)" if exact else " (approximate)")


def bn_channels(bn: _BatchNorm, dense_bn: _BatchNorm) -> torch.Tensor | None:
    """The dense BatchNorm channels a (possibly sliced) BatchNorm kept, from its affine parameters
    (never changed by recovery); None when they cannot tell (no affine parameters, or no clear match)."""
    n_c, n_d = bn.num_features, dense_bn.num_features
    if n_c == n_d:
        return torch.arange(n_c)
    if bn.weight is None or dense_bn.weight is None or n_c > n_d:
        return None
    f_c = torch.stack([bn.weight.detach(), bn.bias.detach()], 1).double()
    f_d = torch.stack([dense_bn.weight.detach(), dense_bn.bias.detach()], 1).double()
    cost = torch.cdist(f_c, f_d, compute_mode=_EXACT).square()
    idx = monotone_match(cost)
    return idx if _accept(cost, idx) else None


def bn_after(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """Conv2d/Linear name -> name of the BatchNorm that directly consumes its output (one probe pass)."""
    made: dict[int, str] = {}
    keep_alive: list[torch.Tensor] = []
    links: dict[str, str] = {}
    hooks = []

    def produced(name):
        def hook(m, args, out):
            made[id(out)] = name
            keep_alive.append(out)

        return hook

    def consumed(name):
        def hook(m, args):
            src = made.get(id(args[0]))
            if src is not None and src not in links:
                links[src] = name

        return hook

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(produced(name)))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append(m.register_forward_pre_hook(consumed(name)))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return links
