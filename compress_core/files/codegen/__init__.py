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
- recovery (``codegen.recover``): the recipe's level (none / bn / reconstruct) as the one
  ``compress_core.engine.recover.recover_`` call it is (PruneScope's own step, said in a comment), on the
  dense copy, keep-masks and k-bit codes it needs, between the float weights and int8 conversion, as the
  Workbench runs it; ``calib_batches`` then holds the recovery's 1,024 training images (int8 uses the first 256).
- the docstring says what to ``pip install``; for zoo models, ``python prunescope_recipe.py`` applies the
  recipe to PruneScope's copy and evaluates it on the card's images, printing its accuracy next to the card's
  (``card``: the measured result it was generated from; ``codegen.script``).

Every number is written into the code; it never reads the recipe at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from compress_core.base.recipe import Recipe
from compress_core.base.records import Result
from compress_core.files.codegen.prune import SCATTER, structured_lines, unstructured_lines
from compress_core.files.codegen.quant import finetune_lines, quant_lines
from compress_core.files.codegen.recover import (
    before_tuning,
    calib_images,
    dense_lines,
    keeps_codes,
    mask_lines,
    quant_constant,
    recovers,
    recovery_lines,
)
from compress_core.files.codegen.script import INT8_IMAGES, card_lines, install_lines, main_lines
from compress_core.files.codegen.target import Target, target


def _body(recipe: Recipe, t: Target, imports: list[str]) -> list[str]:
    """Prune, (fine-tune: a comment), quantize the weights, recover, convert to int8: the Workbench's order."""
    p, lines = recipe.prune, ["model.eval()", *dense_lines(recipe, imports)]
    if p.active and p.kind == "unstructured":
        lines += unstructured_lines(p, t) + finetune_lines(recipe.finetune, True) + mask_lines(recipe)
        lines += [
            "for m in layers.values():  # make it permanent: weight = weight_orig * weight_mask",
            '    prune.remove(m, "weight")',
        ]
    elif p.active:
        lines += structured_lines(p, t, imports) + finetune_lines(recipe.finetune, False)
    else:
        lines += ["# no pruning in this recipe", *finetune_lines(recipe.finetune, False)]
    recover = recovery_lines(recipe, imports)
    if before_tuning(recipe):  # PruneScope recovers right after pruning, so that tuning starts from it
        lines, recover = lines + recover, []
    images = INT8_IMAGES
    quant = quant_lines(recipe.quant, t, imports, ours=keeps_codes(recipe), images=images)
    lines += [*recover, *quant] if recipe.quant.int8 else [*quant, *recover]
    return [*lines, "return model"]


def _docstring(recipe: Recipe, t: Target, imports: list[str]) -> list[str]:
    p = recipe.prune
    uses = {"unstructured": "torch.nn.utils.prune", "structured": "torch-pruning"}
    lib = [uses[p.kind]] if p.active else []
    lib += ["torch.ao.quantization"] if recipe.quant.int8 else []
    lib += ["compress_core.engine.recover (PruneScope's recovery)"] if recovers(recipe) else []
    n = calib_images(recipe, INT8_IMAGES)
    calib = f",\nand calib_batches, {n} training images in batches of 64 (as PruneScope uses)." if n else "."
    return [
        f'"""PruneScope recipe "{recipe.label()}" for {t.title}, in PyTorch code.',
        "",
        *install_lines(recipe, t, imports),
        "",
        "In your training code: model = prunescope_recipe(model), with your trained model of this architecture" + calib,
        *(
            ["Run it (python prunescope_recipe.py) to evaluate it on the card's images, next to the card's accuracy."]
            if t.zoo
            else []
        ),
        f"Uses {', '.join(lib) if lib else 'torch only'}. The recipe it was generated from:",
        recipe.to_json(),
        '"""',
        "",
    ]


def recipe_code(
    recipe: Recipe,
    model_id: str,
    model: nn.Module | None = None,
    input_shape: tuple[int, ...] | None = None,
    card: Mapping[str, Any] | Result | None = None,
) -> str:
    """A runnable Python file applying ``recipe`` with torch / torch-pruning calls (module docstring).
    ``model`` (any instance of the architecture) names the layers when ``model_id`` is not a zoo
    model; without either, the code finds the first conv and the last Linear at run time. ``card``, the
    recipe's measured result (a ``Result`` or its dict), puts its accuracy and images into the file."""
    t = target(model_id, model, input_shape)
    p = recipe.prune
    imports = [
        "import torch",
        *(["import torch_pruning as tp"] if p.active and p.kind == "structured" else []),
        *(["import math"] if p.active and p.kind == "structured" and p.scope == "global" else []),
        "from torch import nn",
    ]
    if p.active and p.kind == "unstructured":
        imports.append("from torch.nn.utils import prune")
    body = ["    " + line if line else "" for line in _body(recipe, t, imports)]
    quant = quant_constant(recipe, imports)
    ours = [i for i in imports if "compress_core" in i]
    if SCATTER in ours:
        ours = [i for i in ours if i != "from compress_core.engine.prune.scatter import ChannelScatter"]
    theirs = sorted((i for i in imports if "compress_core" not in i), key=lambda i: (i.startswith("from"), i))
    imports = [*theirs, *ours]
    needs_shape = t.input_shape is None and ((p.active and p.kind == "structured") or recipe.quant.int8)
    shape = ["INPUT_SHAPE: tuple[int, ...] = ()  # your model's input (channels, height, width): fill it in"]
    consts = [*(shape if needs_shape else []), *quant, *card_lines(card_facts(card), t)]
    sig = "def prunescope_recipe(model: nn.Module, calib_batches: list[torch.Tensor] | None = None) -> nn.Module:"
    head = [*_docstring(recipe, t, imports), *imports, "", *([*consts, ""] if consts else []), ""]
    return "\n".join([*head, sig, *body, *main_lines(recipe, t)]) + "\n"


def card_facts(card: Mapping[str, Any] | Result | None) -> Mapping[str, Any] | None:
    return card.to_dict() if isinstance(card, Result) else card
