"""Recipe -> code: the current recipe as a short Python file that applies it in a user's own training code.

``recipe_code(recipe, model_id)`` returns the source of a module defining
``prunescope_recipe(model, calib_batches=None) -> nn.Module``:

- unstructured pruning as ``torch.nn.utils.prune`` calls (``l1_unstructured`` / ``random_unstructured``
  per layer, ``global_unstructured`` for the global scope, the skip list and per-layer overrides
  spelled out), then ``prune.remove``. Both libraries remove ``round(amount * n)`` weights, so the
  non-zero count equals PruneScope's exactly (l2 ranks single weights like l1; taylor and activation
  have no ``torch.nn.utils.prune`` method and fall back to magnitude, with a comment saying so).
- structured pruning as torch-pruning calls (``DependencyGraph``, ``get_all_groups``,
  ``GroupMagnitudeImportance``, ``get_pruning_group(...).prune()``) with PruneScope's channel counts:
  ``round(ratio * n)`` per group, at least one kept (with ``round_to``: the kept count rounded to a
  multiple of it); the global scope ranks mean-normalised scores over all groups. torch-pruning's
  ``BasePruner`` keeps ``int(n * (1 - ratio))`` channels and ranks global groups its own way, so its
  counts differ; hence the explicit loop. CIFAR ResNets' option-A
  shortcuts need PruneScope's ``ChannelScatter`` (the one compress_core call, commented).
- quantization: int8 as the ``torch.ao.quantization`` calls of PruneScope's int8 path (FX static, or
  dynamic for Linear-only nets); fp16 and k-bit as comments saying they are simulated, with the lines
  that reproduce the weights; fine-tuning as a comment with the recipe's settings.

Every number is written into the code; it never reads the recipe at run time.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from torch import nn

from compress_core.base.recipe import FinetuneSpec, PruneSpec, QuantSpec, Recipe
from compress_core.engine.prune.structured import GLOBAL_MAX_GROUP_FRACTION
from compress_core.models import REGISTRY

METHOD = {"random": "random_unstructured", "l1": "l1_unstructured"}
CLASS = {"random": "prune.RandomUnstructured", "l1": "prune.L1Unstructured"}
DATA_CRITERIA = {"taylor": "taylor criterion (|w * dL/dw| over labelled training batches)",
                 "activation": "activation criterion (|w| times the norm of its input over training images)",
                 "entropy": "entropy criterion (activation entropy over training images)"}
SCATTER = "from compress_core.engine.prune.scatter import ChannelScatter, replace_pad_shortcuts_, scatter_pruner"


@dataclass(frozen=True)
class _Target:
    """What the code needs to know about the model: layer names, input shape, option-A shortcuts."""
    model_id: str
    title: str
    input_shape: tuple[int, ...] | None
    layers: tuple[tuple[str, str], ...] | None  # (name, "Conv2d" | "Linear") in module order; None: unknown
    pad_shortcuts: bool
    zoo: bool  # a zoo model: the file's __main__ block tries the code on PruneScope's copy

    def kept(self, skip: tuple[str, ...]) -> list[str]:
        """Layer names the recipe prunes (the rule of ``prune.layers.prunable_layers``)."""
        assert self.layers is not None
        convs = [n for n, t in self.layers if t == "Conv2d"]
        linears = [n for n, t in self.layers if t == "Linear"]
        drop = {*(convs[:1] if "first" in skip else ()), *(linears[-1:] if "last" in skip else ()),
                *(s for s in skip if s not in ("first", "last"))}
        return [n for n, _ in self.layers if n not in drop]

    @property
    def classifier(self) -> str | None:
        if not self.layers:
            return None
        linears = [n for n, t in self.layers if t == "Linear"]
        return linears[-1] if linears else self.layers[-1][0]


def _layers_of(model: nn.Module) -> tuple[tuple[tuple[str, str], ...] | None, bool]:
    found = tuple((n, type(m).__name__) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    pad = any(type(m).__name__ in ("PadShortcut", "ChannelScatter") for m in model.modules())
    return found or None, pad


@functools.lru_cache(maxsize=16)
def _zoo_layers(model_id: str) -> tuple[tuple[tuple[str, str], ...] | None, bool]:
    return _layers_of(REGISTRY[model_id].builder())  # fresh weights: only the layer names are read


def _target(model_id: str, model: nn.Module | None, input_shape: tuple[int, ...] | None) -> _Target:
    spec = REGISTRY.get(model_id)
    if model is not None:
        layers, pad = _layers_of(model)
    elif spec is not None:
        layers, pad = _zoo_layers(model_id)
    else:
        layers, pad = None, False
    return _Target(model_id, spec.name if spec else model_id, input_shape or (spec.input_shape if spec else None),
                   layers, pad, spec is not None)


def _q(value: object) -> str:
    """A Python literal with double-quoted strings (str, tuple/set of str, dict of str -> float)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_q(k)}: {v!r}" for k, v in value.items()) + "}"
    if isinstance(value, set):
        return "{" + ", ".join(_q(v) for v in sorted(value)) + "}" if value else "set()"
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return "(" + ", ".join(_q(v) for v in items) + ("," if len(items) == 1 else "") + ")"


def _shape(t: _Target) -> str:
    """The arguments after the batch size of an example input: the shape, or the file's INPUT_SHAPE."""
    return ", ".join(map(str, t.input_shape)) if t.input_shape else "*INPUT_SHAPE"


# -- pruning --------------------------------------------------------------------------------------
def _skip_lines(p: PruneSpec, t: _Target) -> list[str]:
    """Lines defining ``skip``: the layer names the recipe leaves dense."""
    said = ", ".join(_q(s) for s in p.skip) or "nothing"
    if t.layers is not None:
        dense = {n for n, _ in t.layers if n not in t.kept(p.skip)}
        return [f"skip = {_q(dense)}  # the recipe's skip list ({said}): left dense"]
    parts = [*(["*convs[:1]"] if "first" in p.skip else []), *(["*linears[-1:]"] if "last" in p.skip else []),
             *(_q(s) for s in p.skip if s not in ("first", "last"))]
    return ["convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]",
            "linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]",
            f"skip = {{{', '.join(parts)}}}  # the recipe's skip list ({said}): left dense" if parts
            else "skip = set()  # the recipe's skip list is empty: every layer prunes"]


def _criterion(p: PruneSpec, structured: bool) -> tuple[str, list[str]]:
    """(criterion the code uses, comment lines when it stands in for PruneScope's)."""
    if p.criterion in ("l1", "random") or (p.criterion == "l2" and structured):
        return p.criterion, []
    if p.criterion == "l2":
        return "l1", ["# l2: w**2 ranks single weights exactly as |w| does, so L1 is the same choice."]
    what = DATA_CRITERIA.get(p.criterion, f"{p.criterion} criterion")
    if structured:
        return "l1", [f"# PruneScope's {what}",
                      "# has no torch-pruning importance that matches it: this code ranks channels by L1 magnitude.",
                      "# The channel counts are the recipe's for the layer scope; the code reproduces PruneScope's",
                      "# l1 recipe exactly."]
    return "l1", [f"# PruneScope's {what}",
                  "# has no torch.nn.utils.prune method: this code ranks by |w| instead. The number of weights",
                  "# removed is the same, which ones differs (pass importance_scores= to the prune call to use",
                  "# your own scores)."]


def _unstructured(p: PruneSpec, t: _Target) -> list[str]:
    crit, notes = _criterion(p, structured=False)
    per_layer = dict(p.layer_sparsity)
    lines = [*notes, *_skip_lines(p, t),
             "layers = {n: m for n, m in model.named_modules()",
             "          if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in skip}  # the layers it prunes"]
    if per_layer:
        lines.append(f"per_layer = {_q(per_layer)}  # the recipe's per-layer sparsities (outside the scope)")
    if crit == "random":
        lines.append(f"torch.manual_seed({p.seed})  # PruneScope draws its own scores: same count, other weights")
    if p.scope == "global":
        pool = "layers.items()" if not per_layer else "layers.items() if n not in per_layer"
        lines += ["# global scope: one ranking over all these layers' weights; round(amount * n) of them removed",
                  f"prune.global_unstructured([(m, \"weight\") for n, m in {pool}],",
                  f"                          pruning_method={CLASS[crit]}, amount={p.sparsity!r})"]
        if per_layer:
            lines += ["for n, amount in per_layer.items():",
                      f"    prune.{METHOD[crit]}(layers[n], \"weight\", amount=amount)"]
        return lines
    amount = f"per_layer.get(n, {p.sparsity!r})" if per_layer else repr(p.sparsity)
    return [*lines, "for n, m in layers.items():  # layer scope: round(amount * n) weights removed in every layer",
            f"    prune.{METHOD[crit]}(m, \"weight\", amount={amount})"]


def _groups_loop(p: PruneSpec, crit: str) -> list[str]:
    """Score every torch-pruning group (and give it its ratio) before anything is removed."""
    ratio = repr(p.sparsity) if p.scope == "layer" else "None"
    lines = ["records = []  # (root module, pruning function, mean-normalised channel scores, ratio; None = global)",
             "for group in dg.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv2d, nn.Linear)):"]
    if not p.residual:
        lines += ["    if any(\"AddBackward\" in str(getattr(d.target.module, \"_grad_fn\", \"\")) for d, _ in group):",
                  "        continue  # inner only: residual streams (joined by additions) keep their channels"]
    lines += [f"    scores = {'imp(group)' if crit != 'random' else 'torch.rand(len(group[0][1]))'}",
              "    if scores is None:",
              "        continue",
              "    scores = (scores / scores.mean() if scores.mean() > 0 else scores).float()"]
    if not p.layer_sparsity:
        return [*lines, f"    records.append((group[0].dep.target.module, group[0].dep.handler, scores, {ratio}))"]
    return [*lines, "    own = [per_layer[names[d.target.module]] for d, _ in group  # layers making these channels",
            "           if dg.is_out_channel_pruning_fn(d.handler) and names.get(d.target.module) in per_layer]",
            "    ratio = max(own) if own else " + ratio,
            "    records.append((group[0].dep.target.module, group[0].dep.handler, scores, ratio))"]


def _choice_lines(p: PruneSpec) -> list[str]:
    """How many channels each group loses: round(ratio * n), or one global ranking; never its last one."""
    lines = ["take = [min(len(s) - 1, round(r * len(s))) if r is not None else 0 for _, _, s, r in records]"]
    if p.scope == "global":
        lines += ["pool = [i for i, (_, _, _, r) in enumerate(records) if r is None]",
                  "owner = torch.cat([torch.full((len(records[i][2]),), i) for i in pool])",
                  "order = torch.cat([records[i][2] for i in pool]).argsort(stable=True)",
                  f"budget = round({p.sparsity!r} * len(order))  # global: the lowest scores over all groups",
                  f"most = max({GLOBAL_MAX_GROUP_FRACTION!r}, {p.sparsity!r})  # no group loses more of its channels",
                  "cap = [len(s) - max(1, math.ceil(len(s) * (1 - most) - 1e-9)) for _, _, s, _ in records]",
                  "for i in owner[order].tolist():",
                  "    if budget == 0:",
                  "        break",
                  "    if take[i] < cap[i]:  # never more than the cap, never a group's last channel",
                  "        take[i], budget = take[i] + 1, budget - 1"]
    if p.round_to:
        lines += [f"R = {p.round_to}  # round_to: a group keeps a multiple of R channels (when it has R or more)",
                  "for i, (_, _, s, _) in enumerate(records):",
                  "    if len(s) >= R:",
                  "        take[i] = len(s) - min(len(s), max(R, R * round((len(s) - take[i]) / R)))"]
    return [*lines, "for (root, fn, s, _), k in zip(records, take):",
            "    if k:  # physically removes the k lowest-scoring channels of the group",
            "        dg.get_pruning_group(root, fn, s.argsort(stable=True)[:k].tolist()).prune()"]


def _structured(p: PruneSpec, t: _Target, imports: list[str]) -> list[str]:
    crit, notes = _criterion(p, structured=True)
    lines = list(notes)
    if t.layers is not None and t.classifier is not None:
        said = ", ".join(_q(s) for s in p.skip) or "none"
        names = _q(tuple(sorted({n for n, _ in t.layers if n not in t.kept(p.skip)} | {t.classifier})))
        lines += [f"# outputs kept: the recipe's skip list ({said}) and the classifier",
                  f"ignored = [model.get_submodule(n) for n in {names}]"]
    else:
        lines += [*_skip_lines(p, t),
                  "ignored = [model.get_submodule(n) for n in skip | {(linears or convs)[-1]}]  # + the classifier"]
    build = "dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)"
    if t.pad_shortcuts:
        imports.append(SCATTER + "  # option-A shortcuts")
        lines += ["# Option-A shortcuts (F.pad) look element-wise to torch-pruning, which would join the 16-, 32- and",
                  "# 64-channel residual streams into one wrong group: PruneScope swaps each for ChannelScatter (the",
                  "# same function, as channel index maps) with its torch-pruning rule: the one compress_core call.",
                  "replace_pad_shortcuts_(model)"]
        indent = " " * len("dg = tp.DependencyGraph().build_dependency(")
        build = build[:-1] + f",\n{indent}customized_pruners={{ChannelScatter: scatter_pruner()}})"
    if crit == "random":
        lines.append(f"torch.manual_seed({p.seed})  # PruneScope's draws: the seed, the example input, one per group")
    lines += [f"example = torch.randn(1, {_shape(t)})", *build.split("\n")]
    if crit != "random":
        lines.append(f"imp = tp.importance.GroupMagnitudeImportance(p={2 if crit == 'l2' else 1}, normalizer=None)"
                     f"  # {crit.upper()} over every weight a channel touches")
    if p.layer_sparsity:
        lines += [f"per_layer = {_q(dict(p.layer_sparsity))}  # ratio of the group whose channels this layer makes",
                  "names = {m: n for n, m in model.named_modules()}"]
    return lines + _groups_loop(p, crit) + _choice_lines(p)


# -- quantization and fine-tuning -------------------------------------------------------------------
def _int8(q: QuantSpec, t: _Target, imports: list[str]) -> list[str]:
    has_conv = t.layers is None or any(kind == "Conv2d" for _, kind in t.layers)
    if (q.int8_mode if q.int8_mode != "auto" else ("static" if has_conv else "dynamic")) == "dynamic":
        imports.append("from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic")
        return ["# int8 dynamic, as PruneScope runs it: Linear weights int8 per channel, activations per batch",
                "model = quantize_dynamic(model.eval(), {nn.Linear: per_channel_dynamic_qconfig})"]
    imports += ["from torch.ao.quantization import get_default_qconfig_mapping",
                "from torch.ao.quantization.fx.custom_config import PrepareCustomConfig",
                "from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx"]
    lines = ["# int8 static (FX post-training quantization), as PruneScope runs it: weights int8 per channel,",
             "# activations uint8 per tensor calibrated on training images, BatchNorm folded into the convolutions",
             "if not calib_batches:",
             "    raise ValueError(\"int8 static needs calib_batches: a few hundred training images, in batches\")",
             "engine = \"x86\" if \"x86\" in torch.backends.quantized.supported_engines else \"qnnpack\"",
             "torch.backends.quantized.engine = engine",
             "custom = PrepareCustomConfig()"]
    if t.pad_shortcuts:
        imports += ["from compress_core.models.cifar_resnet import PadShortcut  # option-A shortcut: no int8 kernel",
                    "from compress_core.engine.prune.scatter import ChannelScatter"]
        lines.append("custom.set_non_traceable_module_classes([PadShortcut, ChannelScatter])  # they stay fp32")
    return [*lines, "prepared = prepare_fx(model.eval(), get_default_qconfig_mapping(engine),",
            f"                      example_inputs=(torch.zeros(1, {_shape(t)}),), prepare_custom_config=custom)",
            "with torch.no_grad():",
            "    for x in calib_batches:  # PruneScope calibrates on 256 training images, in batches of 64",
            "        prepared(x)",
            "model = convert_fx(prepared).eval()"]


def _quant(q: QuantSpec, t: _Target, imports: list[str]) -> list[str]:
    if not q.active:
        return []
    if q.int8:
        return _int8(q, t, imports)
    loop = ["with torch.no_grad():",
            "    for m in model.modules():",
            "        if isinstance(m, (nn.Conv2d, nn.Linear)):  # every layer, skip list or not"]
    if q.bits == 16:
        return ["# fp16: PruneScope rounds the weights to half precision and computes in fp32 (simulated);",
                "# for real fp16 kernels use model.half() on a GPU.", *loop,
                "            m.weight.copy_(m.weight.half().float())"]
    imports.append("from compress_core.engine.quantize import fake_quantize  # PruneScope's own k-bit scheme")
    scheme = "1-bit sign x scale" if q.bits == 1 else f"{q.bits}-bit {q.scheme}"
    per_channel = q.granularity == "per_channel"
    return [f"# {scheme} {q.granularity.replace('_', '-')} weights are PruneScope's own scheme (simulated: the",
            f"# .psz file stores {q.bits}-bit codes, the model computes in fp32). No torch.ao call matches it;",
            "# these lines give the weights PruneScope evaluates (e.g. to check accuracy in your own evaluation):",
            *loop, f"            m.weight.copy_(fake_quantize(m.weight, {q.bits}, {_q(q.scheme)}, {per_channel}))"]


def _finetune(ft: FinetuneSpec | None, unstructured: bool) -> list[str]:
    if ft is None:
        return []
    kd = f", distilled from the dense model (T={ft.temperature:g}, alpha={ft.alpha:g})" if ft.distill else ""
    cap = f", at most {ft.max_samples} images per epoch" if ft.max_samples else ""
    lines = [f"# Fine-tune here: PruneScope trains {ft.epochs:g} epoch(s), SGD (momentum 0.9, nesterov, weight",
             f"# decay 5e-4), lr {ft.lr:g} cosine-annealed to 0, batch {ft.batch_size}{cap}{kd}."]
    if unstructured:
        lines.append("# The masks are still attached, so the pruned weights stay zero while you train.")
    if ft.schedule != "oneshot":
        lines += [f"# Schedule {ft.schedule} in {ft.steps} steps: PruneScope prunes gradually and fine-tunes between",
                  "# steps; to follow it, run this pruning with growing amounts between epochs."]
    return lines


# -- the file ---------------------------------------------------------------------------------------
def _body(recipe: Recipe, t: _Target, imports: list[str]) -> list[str]:
    p, lines = recipe.prune, ["model.eval()"]
    if p.active and p.kind == "unstructured":
        lines += _unstructured(p, t) + _finetune(recipe.finetune, True)
        lines += ["for m in layers.values():  # make it permanent: weight = weight_orig * weight_mask",
                  "    prune.remove(m, \"weight\")"]
    elif p.active:
        lines += _structured(p, t, imports) + _finetune(recipe.finetune, False)
    else:
        lines += ["# no pruning in this recipe", *_finetune(recipe.finetune, False)]
    return lines + _quant(recipe.quant, t, imports) + ["return model"]


def _main(recipe: Recipe, t: _Target) -> list[str]:
    if not t.zoo:
        return []
    int8 = recipe.quant.int8
    calib = f"calibration_batches({_q(REGISTRY[t.model_id].dataset)}, 256)" if int8 else "None"
    return ["", "", "if __name__ == \"__main__\":  # try it on PruneScope's copy of the model",
            "    from compress_core.data.sets import calibration_batches" if int8 else
            "    from compress_core.engine.measure import count_params",
            "    from compress_core.models import load", "",
            f"    out = prunescope_recipe(load({_q(t.model_id)}), {calib})",
            "    print(out)" if int8 else "    print(\"parameters (total, non-zero):\", count_params(out))"]


def _docstring(recipe: Recipe, t: _Target) -> list[str]:
    p = recipe.prune
    uses = {"unstructured": "torch.nn.utils.prune", "structured": "torch-pruning (pip install torch-pruning)"}
    lib = [uses[p.kind]] if p.active else []
    lib += ["torch.ao.quantization"] if recipe.quant.int8 else []
    return [f'"""PruneScope recipe "{recipe.label()}" for {t.title}, in PyTorch code.', "",
            "In your training code: model = prunescope_recipe(model), with your trained model of this architecture"
            + (",\nand calib_batches, a list of training-image batches." if recipe.quant.int8 else "."),
            f"Uses {', '.join(lib) if lib else 'torch only'}. The recipe it was generated from:",
            recipe.to_json(), '"""', ""]


def recipe_code(recipe: Recipe, model_id: str, model: nn.Module | None = None,
                input_shape: tuple[int, ...] | None = None) -> str:
    """A runnable Python file applying ``recipe`` with torch / torch-pruning calls (module docstring).
    ``model`` (any instance of the architecture) names the layers when ``model_id`` is not a zoo
    model; without either, the code finds the first conv and the last Linear at run time."""
    t = _target(model_id, model, input_shape)
    p = recipe.prune
    imports = ["import torch", *(["import torch_pruning as tp"] if p.active and p.kind == "structured" else []),
               *(["import math"] if p.active and p.kind == "structured" and p.scope == "global" else []),
               "from torch import nn"]
    if p.active and p.kind == "unstructured":
        imports.append("from torch.nn.utils import prune")
    body = ["    " + line if line else "" for line in _body(recipe, t, imports)]
    ours = [i for i in imports if "compress_core" in i]
    if SCATTER + "  # option-A shortcuts" in ours:
        ours = [i for i in ours if i != "from compress_core.engine.prune.scatter import ChannelScatter"]
    theirs = sorted((i for i in imports if "compress_core" not in i), key=lambda i: (i.startswith("from"), i))
    imports = [*theirs, *ours]
    needs_shape = t.input_shape is None and ((p.active and p.kind == "structured") or recipe.quant.int8)
    shape = ["INPUT_SHAPE: tuple[int, ...] = ()  # your model's input (channels, height, width): fill it in",
             ""] if needs_shape else []
    sig = "def prunescope_recipe(model: nn.Module, calib_batches: list[torch.Tensor] | None = None) -> nn.Module:"
    return "\n".join([*_docstring(recipe, t), *imports, "", *shape, "", sig, *body, *_main(recipe, t)]) + "\n"
