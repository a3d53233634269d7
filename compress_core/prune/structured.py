"""Structured pruning: physically remove filters, channels and neurons with torch-pruning's dependency graph.

``structured_prune_(model, spec, input_shape, calib, labelled)`` shrinks ``model`` in place and
returns a report (channels per layer, params and MACs before/after, ignored layers). The result is a
plain ``nn.Module``: torch-pruning only plans and slices; no hook or torch-pruning object is left.

How channels are chosen:
- torch-pruning's ``DependencyGraph`` finds each *group* of coupled channels (a conv's filters with
  its BatchNorm and the next layers' input channels; a whole residual stream joined by additions).
- A group is scored per channel by the criterion, averaged over the group's layers and divided by
  the group's mean: ``l1``/``l2`` (torch-pruning's group magnitude, p = 1/2, over every weight the
  channel touches), ``taylor`` (Molchanov et al. 2019: per labelled batch, (sum of a * dL/da over
  the channel's output a)^2, summed over batches), ``activation`` (mean of max(a, 0) over the
  calibration batches: the average activation passed on through a ReLU), ``random``. For data
  criteria ``a`` is the BatchNorm output where the group has one, else the conv/linear output.
- ``layer`` scope removes ``round(sparsity * n)`` channels of every group (n - 1 at most);
  ``global`` ranks all groups' mean-normalised scores together (torch-pruning's global pruning)
  and removes the same total, never a group's last channel. ``layer_sparsity`` entries name a layer
  and set the fraction of the group whose channels that layer produces.
- ``skip`` keeps a layer's *outputs* (``first``: the first conv; ``last``: the classifier). Its inputs
  still shrink with the layers that feed it. The final classifier's outputs are never pruned.

CIFAR ResNets with option-A shortcuts: torch-pruning sees ``F.pad`` as element-wise and would couple
the 16-, 32- and 64-channel residual streams into one wrong group. ``PadShortcut`` modules are
therefore replaced by ``ChannelScatter`` (the same function, written as explicit channel index
maps) which torch-pruning prunes with its own rule, so each stage's residual stream becomes one
correct group. ``residual=False`` keeps every residual stream and prunes only the channels inside
blocks (Li et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import measure
from ..recipe import PruneSpec
from .importance import forward_and_unhook
from .scatter import ChannelScatter, replace_pad_shortcuts_, scatter_pruner
from .skeleton import apply_skeleton_, skeleton
from .unstructured import prunable_layers

CRITERIA = ("random", "l1", "l2", "taylor", "activation")


PRODUCERS = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    return t.sum(dim=[d for d in range(t.dim()) if d != 1])


def _collect(model: nn.Module, hook: Any) -> list:
    return [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRODUCERS)]


def _activation_stats(model: nn.Module, calib: Sequence[torch.Tensor]) -> dict[nn.Module, torch.Tensor]:
    """Mean of max(output, 0) per output channel of every Conv/Linear/BatchNorm over the calibration
    batches: the average activation the channel passes on through a ReLU."""
    sums: dict[nn.Module, torch.Tensor] = {}
    counts: dict[nn.Module, int] = {}

    def hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        sums[module] = sums.get(module, 0) + _per_channel(out.detach().clamp(min=0))
        counts[module] = counts.get(module, 0) + out.numel() // out.shape[1]

    forward_and_unhook(model, calib, _collect(model, hook))
    return {m: s / counts[m] for m, s in sums.items()}


def _taylor_stats(model: nn.Module, labelled) -> dict[nn.Module, torch.Tensor]:
    """Molchanov et al. 2019 (Taylor FO on the layer outputs): per batch, (sum over positions of
    a * dL/da)^2 for every output channel a, summed over batches. Squaring per batch keeps gradients
    of opposite sign from cancelling; it estimates the loss change of switching the channel off."""
    sums: dict[nn.Module, torch.Tensor] = {}

    def hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        act = out.detach()

        def on_grad(grad: torch.Tensor) -> None:
            sums[module] = sums.get(module, 0) + _per_channel(act * grad).pow(2)
        out.register_hook(on_grad)

    model.eval()  # gradient of the deployed model: BN statistics stay fixed
    handles = _collect(model, hook)
    try:
        for x, y in labelled:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    return sums


def _stats_importance(stats: dict[nn.Module, torch.Tensor]) -> Any:
    """A torch-pruning Importance from per-module output-channel statistics: per channel of a group,
    the mean over the layers producing it (their BatchNorms when the group has BatchNorms)."""
    import torch_pruning as tp

    fn = tp.pruner.function
    out_fns = {fn.prune_conv_out_channels, fn.prune_linear_out_channels, fn.prune_batchnorm_out_channels,
               fn.prune_depthwise_conv_out_channels}

    class StatsImportance(tp.importance.GroupMagnitudeImportance):
        @torch.no_grad()
        def __call__(self, group: Any) -> torch.Tensor | None:
            found = [(dep.target.module, idxs, group[i].root_idxs) for i, (dep, idxs) in enumerate(group)
                     if dep.handler in out_fns and dep.target.module in stats]
            bns = [f for f in found if isinstance(f[0], nn.modules.batchnorm._BatchNorm)]
            use = bns or found
            if not use:
                return None
            return self._reduce([stats[m][idxs] for m, idxs, _ in use], [r for _, _, r in use])

    return StatsImportance()


def _score_groups(criterion: str, model: nn.Module, groups: list, calib, labelled) -> list[torch.Tensor | None]:
    """Per-channel importance of every group, each normalised by its mean (comparable across groups)."""
    import torch_pruning as tp

    if criterion in ("l1", "l2"):
        imp = tp.importance.GroupMagnitudeImportance(p=1 if criterion == "l1" else 2, normalizer=None)
        raw = [imp(g) for g in groups]
    elif criterion == "random":
        raw = [torch.rand(len(g[0][1])) for g in groups]
    elif criterion == "taylor":
        if not labelled:
            raise ValueError("the taylor criterion needs labelled training batches, which are not available here")
        imp = _stats_importance(_taylor_stats(model, labelled))
        raw = [imp(g) for g in groups]
    elif criterion == "activation":
        if not calib:
            raise ValueError("the activation criterion needs calibration batches (training images)")
        imp = _stats_importance(_activation_stats(model, calib))
        raw = [imp(g) for g in groups]
    else:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of: {', '.join(CRITERIA)}")
    return [None if s is None else (s / s.mean() if s.mean() > 0 else s).detach().float().cpu() for s in raw]


def _classifier(model: nn.Module) -> str:
    """The layer that makes the logits: the last Linear, else the last Conv2d."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    linears = [n for n, m in layers if isinstance(m, nn.Linear)]
    return linears[-1] if linears else layers[-1][0]


def _is_residual(group: Any) -> bool:
    return any("AddBackward" in str(getattr(dep.target.module, "_grad_fn", "")) for dep, _ in group)


def _n_pruned(n: int, ratio: float, round_to: int | None) -> int:
    """Channels to remove from a group of ``n``: nearest to ``ratio * n``, keeping at least one
    channel and, with ``round_to``, a multiple of it (when the group has that many)."""
    keep = n - min(n - 1, round(ratio * n))
    if round_to and n >= round_to:
        keep = min(n, max(round_to, round_to * round(keep / round_to)))
    return n - keep


def _plan(model: nn.Module, dg: Any, spec: PruneSpec, ignored: list[nn.Module], data: tuple,
          residual: bool, round_to: int | None) -> tuple[list[tuple], list[str]]:
    """(root module, pruning fn, channel indices to remove) per group, and unused override names."""
    name_of = {m: n for n, m in model.named_modules()}
    overrides = dict(spec.layer_sparsity)
    groups = [g for g in dg.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv2d, nn.Linear))
              if residual or not _is_residual(g)]
    scores = _score_groups(spec.criterion, model, groups, *data) if groups else []
    records = []  # (root, fn, importance, ratio or None for the global pool)
    used: set[str] = set()
    for group, imp in zip(groups, scores, strict=True):
        if imp is None:
            continue
        producers = [name_of.get(d.target.module) for d, _ in group
                     if dg.is_out_channel_pruning_fn(d.handler) and isinstance(d.target.module, (nn.Conv2d, nn.Linear))]
        named = [overrides[n] for n in producers if n in overrides]
        used.update(n for n in producers if n in overrides)
        ratio = max(named) if named else (spec.sparsity if spec.scope == "layer" else None)
        records.append((group[0].dep.target.module, group[0].dep.handler, imp, ratio))
    if not records:
        raise ValueError("nothing to prune structurally: every Conv2d/Linear layer's outputs are skipped, "
                         "feed the model output or are coupled with a skipped layer; shorten the skip list")
    removed = {i: torch.argsort(imp, stable=True)[:_n_pruned(len(imp), r, round_to)]
               for i, (_, _, imp, r) in enumerate(records) if r is not None}
    removed.update(_global_choice(records, spec.sparsity, round_to))
    plan = [(root, fn, sorted(removed[i].tolist())) for i, (root, fn, _, _) in enumerate(records)]
    return plan, sorted(set(overrides) - used)


def _global_choice(records: list[tuple], sparsity: float, round_to: int | None) -> dict[int, torch.Tensor]:
    """One ranking over all pooled groups' normalised scores; never a group's last channel."""
    pool = [i for i, r in enumerate(records) if r[3] is None]
    if not pool:
        return {}
    imps = [records[i][2] for i in pool]
    owner = torch.cat([torch.full((len(imp),), j) for j, imp in enumerate(imps)])
    order = torch.argsort(torch.cat(imps), stable=True)
    taken, budget = [0] * len(pool), round(sparsity * len(order))
    for j in owner[order].tolist():
        if budget == 0:
            break
        if taken[j] < len(imps[j]) - 1:
            taken[j] += 1
            budget -= 1
    out = {}
    for j, i in enumerate(pool):
        n = len(imps[j])
        k = _n_pruned(n, taken[j] / n, round_to) if round_to else taken[j]
        out[i] = torch.argsort(imps[j], stable=True)[:k]
    return out


def _layer_table(model: nn.Module) -> dict[str, tuple[int, int]]:
    return {n: (d["in"], d["out"]) for n, d in skeleton(model).items() if d["type"] in ("Conv2d", "Linear")}


def _check_supported(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and 1 < m.groups < m.in_channels:
            raise ValueError(f"layer {name} is a grouped convolution (groups={m.groups}); structured pruning "
                             "supports plain and depthwise convolutions only")


def structured_prune_(model: nn.Module, spec: PruneSpec, input_shape: tuple[int, ...],
                      calib: list[torch.Tensor] | None = None,
                      labelled: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                      residual: bool | None = None, round_to: int | None = None) -> dict:
    """Remove channels from ``model`` in place (see the module docstring) and return a report.
    ``residual`` defaults to ``spec.residual``."""
    import torch_pruning as tp

    residual = spec.residual if residual is None else residual
    if spec.criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {spec.criterion!r}; choose one of: {', '.join(CRITERIA)}")
    if round_to is not None and round_to < 1:
        raise ValueError(f"round_to must be a positive number of channels or None; got {round_to}")
    _check_supported(model)
    was_training = model.training
    model.eval()
    before = _layer_table(model)
    params_before, macs_before = measure.count_params(model)[0], measure.count_macs(model, input_shape)
    shortcuts = replace_pad_shortcuts_(model)

    kept_names = {n for n, _ in prunable_layers(model, spec.skip)}  # raises on unknown skip names
    unknown = set(dict(spec.layer_sparsity)) - kept_names
    if unknown:
        raise ValueError(f"layer_sparsity names layer(s) that are not prunable here: {', '.join(sorted(unknown))}; "
                         f"prunable: {', '.join(sorted(kept_names))}")
    ignored_names = sorted((set(before) - kept_names) | {_classifier(model)})
    ignored = [model.get_submodule(n) for n in ignored_names]

    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
        try:
            dg = tp.DependencyGraph().build_dependency(
                model, example_inputs=torch.randn(1, *input_shape),
                customized_pruners={ChannelScatter: scatter_pruner()})
            plan, unused = _plan(model, dg, spec, ignored, (calib, labelled), residual, round_to)
            for root, fn, idxs in plan:
                if idxs:
                    dg.get_pruning_group(root, fn, idxs).prune()
        finally:
            model.zero_grad(set_to_none=True)
    model.train(was_training)

    after = _layer_table(model)
    pruned_outputs = [n for n in after if after[n][1] != before[n][1]]
    return {
        "criterion": spec.criterion, "scope": spec.scope, "sparsity": spec.sparsity,
        "residual": residual, "shortcuts_rewritten": shortcuts, "ignored": ignored_names,
        "overrides_unused": unused, "groups": len(plan), "groups_pruned": sum(bool(p[2]) for p in plan),
        "layers": [{"layer": n, "in_before": before[n][0], "in_after": after[n][0],
                    "out_before": before[n][1], "out_after": after[n][1]} for n in before],
        "channels_before": {n: before[n][1] for n in pruned_outputs},
        "channels_after": {n: after[n][1] for n in pruned_outputs},
        "params_before": params_before, "params_after": measure.count_params(model)[0],
        "macs_before": macs_before, "macs_after": measure.count_macs(model, input_shape),
        "skeleton": skeleton(model),
    }
