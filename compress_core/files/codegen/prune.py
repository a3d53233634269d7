"""Pruning as code: ``unstructured_lines`` (``torch.nn.utils.prune`` calls) and ``structured_lines``
(torch-pruning's dependency graph with PruneScope's channel counts), with the comments that say where a
criterion has no library equivalent. ``SCATTER`` is the one compress_core import option-A shortcuts need."""

from __future__ import annotations

from compress_core.base.recipe import PruneSpec
from compress_core.engine.prune.structured import GLOBAL_MAX_GROUP_FRACTION
from compress_core.files.codegen.target import Target, literal, shape_args

METHOD = {"random": "random_unstructured", "l1": "l1_unstructured"}
CLASS = {"random": "prune.RandomUnstructured", "l1": "prune.L1Unstructured"}
DATA_CRITERIA = {
    "taylor": "taylor criterion (|w * dL/dw| over labelled training batches)",
    "activation": "activation criterion (|w| times the norm of its input over training images)",
    "entropy": "entropy criterion (activation entropy over training images)",
}
SCATTER = "from compress_core.engine.prune.scatter import ChannelScatter, replace_pad_shortcuts_, scatter_pruner"


def _skip_lines(p: PruneSpec, t: Target) -> list[str]:
    """Lines defining ``skip``: the layer names the recipe leaves dense."""
    said = ", ".join(literal(s) for s in p.skip) or "nothing"
    if t.layers is not None:
        dense = {n for n, _ in t.layers if n not in t.kept(p.skip)}
        return [f"skip = {literal(dense)}  # the recipe's skip list ({said}): left dense"]
    parts = [
        *(["*convs[:1]"] if "first" in p.skip else []),
        *(["*linears[-1:]"] if "last" in p.skip else []),
        *(literal(s) for s in p.skip if s not in ("first", "last")),
    ]
    return [
        "convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]",
        "linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]",
        f"skip = {{{', '.join(parts)}}}  # the recipe's skip list ({said}): left dense"
        if parts
        else "skip = set()  # the recipe's skip list is empty: every layer prunes",
    ]


def _criterion(p: PruneSpec, structured: bool) -> tuple[str, list[str]]:
    """(criterion the code uses, comment lines when it stands in for PruneScope's)."""
    if p.criterion in ("l1", "random") or (p.criterion == "l2" and structured):
        return p.criterion, []
    if p.criterion == "l2":
        return "l1", ["# l2: w**2 ranks single weights exactly as |w| does, so L1 is the same choice."]
    what = DATA_CRITERIA.get(p.criterion, f"{p.criterion} criterion")
    if structured:
        return "l1", [
            f"# PruneScope's {what}",
            "# has no torch-pruning importance that matches it: this code ranks channels by L1 magnitude.",
            "# The channel counts are the recipe's for the layer scope; the code reproduces PruneScope's",
            "# l1 recipe exactly.",
        ]
    return "l1", [
        f"# PruneScope's {what}",
        "# has no torch.nn.utils.prune method: this code ranks by |w| instead. The number of weights",
        "# removed is the same, which ones differs (pass importance_scores= to the prune call to use",
        "# your own scores).",
    ]


def unstructured_lines(p: PruneSpec, t: Target) -> list[str]:
    crit, notes = _criterion(p, structured=False)
    per_layer = dict(p.layer_sparsity)
    lines = [
        *notes,
        *_skip_lines(p, t),
        "layers = {n: m for n, m in model.named_modules()",
        "          if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in skip}  # the layers it prunes",
    ]
    if per_layer:
        lines.append(f"per_layer = {literal(per_layer)}  # the recipe's per-layer sparsities (outside the scope)")
    if crit == "random":
        lines.append(f"torch.manual_seed({p.seed})  # PruneScope draws its own scores: same count, other weights")
    if p.scope == "global":
        pool = "layers.items()" if not per_layer else "layers.items() if n not in per_layer"
        lines += [
            "# global scope: one ranking over all these layers' weights; round(amount * n) of them removed",
            f'prune.global_unstructured([(m, "weight") for n, m in {pool}],',
            f"                          pruning_method={CLASS[crit]}, amount={p.sparsity!r})",
        ]
        if per_layer:
            lines += [
                "for n, amount in per_layer.items():",
                f'    prune.{METHOD[crit]}(layers[n], "weight", amount=amount)',
            ]
        return lines
    amount = f"per_layer.get(n, {p.sparsity!r})" if per_layer else repr(p.sparsity)
    return [
        *lines,
        "for n, m in layers.items():  # layer scope: round(amount * n) weights removed in every layer",
        f'    prune.{METHOD[crit]}(m, "weight", amount={amount})',
    ]


def _groups_loop(p: PruneSpec, crit: str) -> list[str]:
    """Score every torch-pruning group (and give it its ratio) before anything is removed."""
    ratio = repr(p.sparsity) if p.scope == "layer" else "None"
    lines = [
        "records = []  # (root module, pruning function, mean-normalised channel scores, ratio; None = global)",
        "for group in dg.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv2d, nn.Linear)):",
    ]
    if not p.residual:
        lines += [
            '    if any("AddBackward" in str(getattr(d.target.module, "_grad_fn", "")) for d, _ in group):',
            "        continue  # inner only: residual streams (joined by additions) keep their channels",
        ]
    lines += [
        f"    scores = {'imp(group)' if crit != 'random' else 'torch.rand(len(group[0][1]))'}",
        "    if scores is None:",
        "        continue",
        "    scores = (scores / scores.mean() if scores.mean() > 0 else scores).float()",
    ]
    if not p.layer_sparsity:
        return [*lines, f"    records.append((group[0].dep.target.module, group[0].dep.handler, scores, {ratio}))"]
    return [
        *lines,
        "    own = [per_layer[names[d.target.module]] for d, _ in group  # layers making these channels",
        "           if dg.is_out_channel_pruning_fn(d.handler) and names.get(d.target.module) in per_layer]",
        "    ratio = max(own) if own else " + ratio,
        "    records.append((group[0].dep.target.module, group[0].dep.handler, scores, ratio))",
    ]


def _choice_lines(p: PruneSpec) -> list[str]:
    """How many channels each group loses: round(ratio * n), or one global ranking; never its last one."""
    lines = ["take = [min(len(s) - 1, round(r * len(s))) if r is not None else 0 for _, _, s, r in records]"]
    if p.scope == "global":
        lines += [
            "pool = [i for i, (_, _, _, r) in enumerate(records) if r is None]",
            "owner = torch.cat([torch.full((len(records[i][2]),), i) for i in pool])",
            "order = torch.cat([records[i][2] for i in pool]).argsort(stable=True)",
            f"budget = round({p.sparsity!r} * len(order))  # global: the lowest scores over all groups",
            f"most = max({GLOBAL_MAX_GROUP_FRACTION!r}, {p.sparsity!r})  # no group loses more of its channels",
            "cap = [len(s) - max(1, math.ceil(len(s) * (1 - most) - 1e-9)) for _, _, s, _ in records]",
            "for i in owner[order].tolist():",
            "    if budget == 0:",
            "        break",
            "    if take[i] < cap[i]:  # never more than the cap, never a group's last channel",
            "        take[i], budget = take[i] + 1, budget - 1",
        ]
    if p.round_to:
        lines += [
            f"R = {p.round_to}  # round_to: a group keeps a multiple of R channels (when it has R or more)",
            "for i, (_, _, s, _) in enumerate(records):",
            "    if len(s) >= R:",
            "        take[i] = len(s) - min(len(s), max(R, R * round((len(s) - take[i]) / R)))",
        ]
    return [
        *lines,
        "for (root, fn, s, _), k in zip(records, take):",
        "    if k:  # physically removes the k lowest-scoring channels of the group",
        "        dg.get_pruning_group(root, fn, s.argsort(stable=True)[:k].tolist()).prune()",
    ]


def structured_lines(p: PruneSpec, t: Target, imports: list[str]) -> list[str]:
    crit, notes = _criterion(p, structured=True)
    lines = list(notes)
    if t.layers is not None and t.classifier is not None:
        said = ", ".join(literal(s) for s in p.skip) or "none"
        names = literal(tuple(sorted({n for n, _ in t.layers if n not in t.kept(p.skip)} | {t.classifier})))
        lines += [
            f"# outputs kept: the recipe's skip list ({said}) and the classifier",
            f"ignored = [model.get_submodule(n) for n in {names}]",
        ]
    else:
        lines += [
            *_skip_lines(p, t),
            "ignored = [model.get_submodule(n) for n in skip | {(linears or convs)[-1]}]  # + the classifier",
        ]
    build = "dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)"
    if t.pad_shortcuts:
        imports.append(SCATTER)  # the comment lines below say why
        lines += [
            "# Option-A shortcuts (F.pad) look element-wise to torch-pruning, which would join the 16-, 32- and",
            "# 64-channel residual streams into one wrong group: PruneScope swaps each for ChannelScatter (the",
            "# same function, as channel index maps) with its torch-pruning rule: the one compress_core call.",
            "replace_pad_shortcuts_(model)",
        ]
        indent = " " * len("dg = tp.DependencyGraph().build_dependency(")
        build = build[:-1] + f",\n{indent}customized_pruners={{ChannelScatter: scatter_pruner()}})"
    if crit == "random":
        lines.append(f"torch.manual_seed({p.seed})  # PruneScope's draws: the seed, the example input, one per group")
    lines += [f"example = torch.randn(1, {shape_args(t)})", *build.split("\n")]
    if crit != "random":
        lines.append(
            f"imp = tp.importance.GroupMagnitudeImportance(p={2 if crit == 'l2' else 1}, normalizer=None)"
            f"  # {crit.upper()} over every weight a channel touches"
        )
    if p.layer_sparsity:
        lines += [
            f"per_layer = {literal(dict(p.layer_sparsity))}  # ratio of the group whose channels this layer makes",
            "names = {m: n for n, m in model.named_modules()}",
        ]
    return lines + _groups_loop(p, crit) + _choice_lines(p)
