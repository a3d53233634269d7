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

from torch import nn

from compress_core.base.recipe import Recipe
from compress_core.files.codegen.prune import SCATTER, structured_lines, unstructured_lines
from compress_core.files.codegen.quant import finetune_lines, quant_lines
from compress_core.files.codegen.target import Target, literal, target
from compress_core.models import REGISTRY


def _body(recipe: Recipe, t: Target, imports: list[str]) -> list[str]:
    p, lines = recipe.prune, ["model.eval()"]
    if p.active and p.kind == "unstructured":
        lines += unstructured_lines(p, t) + finetune_lines(recipe.finetune, True)
        lines += [
            "for m in layers.values():  # make it permanent: weight = weight_orig * weight_mask",
            '    prune.remove(m, "weight")',
        ]
    elif p.active:
        lines += structured_lines(p, t, imports) + finetune_lines(recipe.finetune, False)
    else:
        lines += ["# no pruning in this recipe", *finetune_lines(recipe.finetune, False)]
    return lines + quant_lines(recipe.quant, t, imports) + ["return model"]


def _main(recipe: Recipe, t: Target) -> list[str]:
    if not t.zoo:
        return []
    int8 = recipe.quant.int8
    calib = f"calibration_batches({literal(REGISTRY[t.model_id].dataset)}, 256)" if int8 else "None"
    return [
        "",
        "",
        'if __name__ == "__main__":  # try it on PruneScope\'s copy of the model',
        "    from compress_core.data.sets import calibration_batches"
        if int8
        else "    from compress_core.engine.measure import count_params",
        "    from compress_core.models import load",
        "",
        f"    out = prunescope_recipe(load({literal(t.model_id)}), {calib})",
        "    print(out)" if int8 else '    print("parameters (total, non-zero):", count_params(out))',
    ]


def _docstring(recipe: Recipe, t: Target) -> list[str]:
    p = recipe.prune
    uses = {"unstructured": "torch.nn.utils.prune", "structured": "torch-pruning (pip install torch-pruning)"}
    lib = [uses[p.kind]] if p.active else []
    lib += ["torch.ao.quantization"] if recipe.quant.int8 else []
    return [
        f'"""PruneScope recipe "{recipe.label()}" for {t.title}, in PyTorch code.',
        "",
        "In your training code: model = prunescope_recipe(model), with your trained model of this architecture"
        + (",\nand calib_batches, a list of training-image batches." if recipe.quant.int8 else "."),
        f"Uses {', '.join(lib) if lib else 'torch only'}. The recipe it was generated from:",
        recipe.to_json(),
        '"""',
        "",
    ]


def recipe_code(
    recipe: Recipe, model_id: str, model: nn.Module | None = None, input_shape: tuple[int, ...] | None = None
) -> str:
    """A runnable Python file applying ``recipe`` with torch / torch-pruning calls (module docstring).
    ``model`` (any instance of the architecture) names the layers when ``model_id`` is not a zoo
    model; without either, the code finds the first conv and the last Linear at run time."""
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
    ours = [i for i in imports if "compress_core" in i]
    if SCATTER in ours:
        ours = [i for i in ours if i != "from compress_core.engine.prune.scatter import ChannelScatter"]
    theirs = sorted((i for i in imports if "compress_core" not in i), key=lambda i: (i.startswith("from"), i))
    imports = [*theirs, *ours]
    needs_shape = t.input_shape is None and ((p.active and p.kind == "structured") or recipe.quant.int8)
    shape = (
        ["INPUT_SHAPE: tuple[int, ...] = ()  # your model's input (channels, height, width): fill it in", ""]
        if needs_shape
        else []
    )
    sig = "def prunescope_recipe(model: nn.Module, calib_batches: list[torch.Tensor] | None = None) -> nn.Module:"
    return "\n".join([*_docstring(recipe, t), *imports, "", *shape, "", sig, *body, *_main(recipe, t)]) + "\n"
