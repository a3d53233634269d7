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
  and removes the same total, but no group loses more than ``GLOBAL_MAX_GROUP_FRACTION`` (or the
  target sparsity, if higher) of its channels (torch-pruning's ``max_pruning_ratio``): without the cap
  global ranking cut LeNet-5's conv2 to 1 of 16 channels at 50 %, and accuracy to chance.
  ``layer_sparsity`` entries name a layer and set the fraction of the group whose channels that
  layer produces.
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

import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from compress_core.base.recipe import PruneSpec
from compress_core.base.records import NO_CALIBRATION, Calibration, StructureReport
from compress_core.engine import measure
from compress_core.engine.prune import criteria
from compress_core.engine.prune.kinds import PruneContext, Pruned, Pruner, register
from compress_core.engine.prune.layers import classifier, prunable_layers
from compress_core.engine.prune.scatter import ChannelScatter, replace_pad_shortcuts_, scatter_pruner
from compress_core.engine.prune.schedule import structured_step_fraction
from compress_core.engine.prune.skeleton import apply_skeleton_, skeleton

GLOBAL_MAX_GROUP_FRACTION = 0.8  # global scope: the most of a group's channels it may remove

__all__ = ["ChannelScatter", "StructuredPruner", "apply_skeleton_", "merge_reports", "skeleton", "structured_prune_"]


def _is_residual(group: Any) -> bool:
    return any("AddBackward" in str(getattr(dep.target.module, "_grad_fn", "")) for dep, _ in group)


def _n_pruned(n: int, ratio: float, round_to: int | None) -> int:
    """Channels to remove from a group of ``n``: nearest to ``ratio * n``, keeping at least one
    channel and, with ``round_to``, a multiple of it (when the group has that many)."""
    keep = n - min(n - 1, round(ratio * n))
    if round_to and n >= round_to:
        keep = min(n, max(round_to, round_to * round(keep / round_to)))
    return n - keep


def _plan(
    model: nn.Module,
    dg: Any,
    spec: PruneSpec,
    ignored: list[nn.Module],
    calib: Calibration,
    residual: bool,
    round_to: int | None,
) -> tuple[list[tuple], list[str]]:
    """(root module, pruning fn, channel indices to remove) per group, and unused override names."""
    name_of = {m: n for n, m in model.named_modules()}
    overrides = dict(spec.layer_sparsity)
    groups = [
        g
        for g in dg.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv2d, nn.Linear))
        if residual or not _is_residual(g)
    ]
    scores = criteria.group_scores(spec.criterion, model, groups, calib, spec.seed) if groups else []
    records = []  # (root, fn, importance, ratio or None for the global pool)
    used: set[str] = set()
    for group, imp in zip(groups, scores, strict=True):
        if imp is None:
            continue
        producers = [
            name_of.get(d.target.module)
            for d, _ in group
            if dg.is_out_channel_pruning_fn(d.handler) and isinstance(d.target.module, (nn.Conv2d, nn.Linear))
        ]
        named = [overrides[n] for n in producers if n in overrides]
        used.update(n for n in producers if n in overrides)
        ratio = max(named) if named else (spec.sparsity if spec.scope == "layer" else None)
        records.append((group[0].dep.target.module, group[0].dep.handler, imp, ratio))
    if not records:
        raise ValueError(
            "nothing to prune structurally: every Conv2d/Linear layer's outputs are skipped, "
            "feed the model output or are coupled with a skipped layer; shorten the skip list"
        )
    removed = {
        i: torch.argsort(imp, stable=True)[: _n_pruned(len(imp), r, round_to)]
        for i, (_, _, imp, r) in enumerate(records)
        if r is not None
    }
    removed.update(_global_choice(records, spec.sparsity, round_to))
    plan = [(root, fn, sorted(removed[i].tolist())) for i, (root, fn, _, _) in enumerate(records)]
    return plan, sorted(set(overrides) - used)


def group_cap(n: int, sparsity: float) -> int:
    """The most channels global scope takes from a group of ``n``: at most ``max(GLOBAL_MAX_GROUP_FRACTION,
    sparsity)`` of them, and never its last one."""
    return n - max(1, math.ceil(n * (1 - max(GLOBAL_MAX_GROUP_FRACTION, sparsity)) - 1e-9))


def _global_choice(records: list[tuple], sparsity: float, round_to: int | None) -> dict[int, torch.Tensor]:
    """One ranking over all pooled groups' normalised scores; no group loses more than ``group_cap``."""
    pool = [i for i, r in enumerate(records) if r[3] is None]
    if not pool:
        return {}
    imps = [records[i][2] for i in pool]
    owner = torch.cat([torch.full((len(imp),), j) for j, imp in enumerate(imps)])
    order = torch.argsort(torch.cat(imps), stable=True)
    taken, budget = [0] * len(pool), round(sparsity * len(order))
    caps = [group_cap(len(imp), sparsity) for imp in imps]
    for j in owner[order].tolist():
        if budget == 0:
            break
        if taken[j] < caps[j]:
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
            raise ValueError(
                f"layer {name} is a grouped convolution (groups={m.groups}); structured pruning "
                "supports plain and depthwise convolutions only"
            )


def structured_prune_(
    model: nn.Module,
    spec: PruneSpec,
    input_shape: tuple[int, ...],
    calib: Calibration = NO_CALIBRATION,
    residual: bool | None = None,
    round_to: int | None = None,
) -> StructureReport:
    """Remove channels from ``model`` in place (see the module docstring) and return a report.
    ``residual`` defaults to ``spec.residual``."""
    residual = spec.residual if residual is None else residual
    round_to = (spec.round_to or None) if round_to is None else round_to  # the recipe's, unless given
    criteria.get(spec.criterion)  # an unknown criterion fails before any work
    if round_to is not None and round_to < 1:
        raise ValueError(f"round_to must be a positive number of channels or None; got {round_to}")
    _check_supported(model)
    was_training = model.training
    model.eval()
    before = _layer_table(model)
    params_before, macs_before = measure.count_params(model)[0], measure.count_macs(model, input_shape)
    shortcuts = replace_pad_shortcuts_(model)

    ignored_names = _ignored_names(model, spec, before)
    ignored = [model.get_submodule(n) for n in ignored_names]
    plan, unused = _prune_groups_(model, spec, input_shape, ignored, calib, residual, round_to)
    model.train(was_training)

    after = _layer_table(model)
    pruned_outputs = [n for n in after if after[n][1] != before[n][1]]
    return StructureReport(
        criterion=spec.criterion,
        scope=spec.scope,
        sparsity=spec.sparsity,
        residual=residual,
        shortcuts_rewritten=shortcuts,
        ignored=ignored_names,
        overrides_unused=unused,
        groups=len(plan),
        groups_pruned=sum(bool(p[2]) for p in plan),
        layers=[
            {
                "layer": n,
                "in_before": before[n][0],
                "in_after": after[n][0],
                "out_before": before[n][1],
                "out_after": after[n][1],
            }
            for n in before
        ],
        channels_before={n: before[n][1] for n in pruned_outputs},
        channels_after={n: after[n][1] for n in pruned_outputs},
        params_before=params_before,
        params_after=measure.count_params(model)[0],
        macs_before=macs_before,
        macs_after=measure.count_macs(model, input_shape),
        skeleton=skeleton(model),
    )


def _ignored_names(model: nn.Module, spec: PruneSpec, layers: dict[str, tuple[int, int]]) -> list[str]:
    """The layers whose outputs stay: those the skip list leaves dense, and the classifier."""
    kept_names = {n for n, _ in prunable_layers(model, spec.skip)}  # raises on unknown skip names
    unknown = set(dict(spec.layer_sparsity)) - kept_names
    if unknown:
        raise ValueError(
            f"layer_sparsity names layer(s) that are not prunable here: {', '.join(sorted(unknown))}; "
            f"prunable: {', '.join(sorted(kept_names))}"
        )
    return sorted((set(layers) - kept_names) | {classifier(model)})


def _prune_groups_(
    model: nn.Module,
    spec: PruneSpec,
    input_shape: tuple[int, ...],
    ignored: list[nn.Module],
    calib: Calibration,
    residual: bool,
    round_to: int | None,
) -> tuple[list[tuple], list[str]]:
    """Plan on torch-pruning's dependency graph and remove the planned channels: (plan, unused overrides).
    The random draws (example input, random scores) come from ``spec.seed`` and leave the global RNG as it was."""
    import torch_pruning as tp

    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
        try:
            dg = tp.DependencyGraph().build_dependency(
                model,
                example_inputs=torch.randn(1, *input_shape),
                customized_pruners={ChannelScatter: scatter_pruner()},
            )
            plan, unused = _plan(model, dg, spec, ignored, calib, residual, round_to)
            for root, fn, idxs in plan:
                if idxs:
                    dg.get_pruning_group(root, fn, idxs).prune()
        finally:
            model.zero_grad(set_to_none=True)
    return plan, unused


def merge_reports(total: StructureReport | None, step: StructureReport, cumulative_sparsity: float) -> StructureReport:
    """Fold one step's report into the running one of a gradual schedule: "before" values stay those of
    the dense model, "after" values are the latest; ``steps`` lists every step."""
    row = {
        "cumulative_sparsity": cumulative_sparsity,
        "step_sparsity": step.sparsity,
        "params_after": step.params_after,
        "macs_after": step.macs_after,
    }
    if total is None:
        return replace(step, sparsity=cumulative_sparsity, steps=[row])
    first = {r["layer"]: r for r in total.layers}
    layers = [
        {**r, "in_before": first[r["layer"]]["in_before"], "out_before": first[r["layer"]]["out_before"]}
        if r["layer"] in first
        else r
        for r in step.layers
    ]
    changed = [r for r in layers if r["out_before"] != r["out_after"]]
    return replace(
        step,
        sparsity=cumulative_sparsity,
        layers=layers,
        shortcuts_rewritten=total.shortcuts_rewritten + step.shortcuts_rewritten,
        channels_before={r["layer"]: r["out_before"] for r in changed},
        channels_after={r["layer"]: r["out_after"] for r in changed},
        params_before=total.params_before,
        macs_before=total.macs_before,
        steps=[*total.steps, row],
    )


def _input_shape(ctx: PruneContext) -> tuple[int, ...]:
    if ctx.input_shape is None:
        raise ValueError("structured pruning needs the model spec (input shape); pass spec=")
    return ctx.input_shape


@register
class StructuredPruner(Pruner):
    """Whole channels, physically removed: a smaller dense model (real speed-ups on stock kernels)."""

    key = "structured"
    label = "Structured (channels)"
    description = "Remove whole channels: smaller dense layers, real speed-up, more accuracy loss."
    sensitivity_skip = ("last",)  # the logits layer cannot lose output channels

    def prune_(self, model: nn.Module, spec: PruneSpec, ctx: PruneContext) -> Pruned:
        return Pruned(structure=structured_prune_(model, spec, _input_shape(ctx), ctx.calib))

    def step_(
        self, model: nn.Module, target: PruneSpec, previous: PruneSpec | None, state: Pruned, ctx: PruneContext
    ) -> Pruned:
        """Remove the fraction of the *current* channels that takes cumulative ``previous`` to ``target``."""
        before = previous.sparsity if previous else 0.0
        prev_layers = dict(previous.layer_sparsity) if previous else {}
        local = replace(
            target,
            sparsity=structured_step_fraction(before, target.sparsity),
            layer_sparsity=tuple(
                (n, structured_step_fraction(prev_layers.get(n, 0.0), s)) for n, s in target.layer_sparsity
            ),
        )
        if not local.active:
            return state
        report = structured_prune_(model, local, _input_shape(ctx), ctx.calib)
        return Pruned(structure=merge_reports(state.structure, report, target.sparsity))
