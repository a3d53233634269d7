"""The generated file's top and bottom: what to install (``install_lines``), the card's accuracy it was
generated from (``card_lines``) and the ``__main__`` block (``main_lines``) that applies the recipe to
PruneScope's copy of a zoo model with the Workbench's calibration images and evaluates it on the card's
images (``data.sets.eval_set(dataset, mode)``, in batches of ``measure.EVAL_BATCH``, fp32 conv nets in
channels_last as ``bench.parts.predict`` runs them), printing its accuracy next to the card's. Where the
weights or the data are missing it says so and exits with status 0."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from compress_core.base.recipe import Recipe
from compress_core.engine.measure import EVAL_BATCH
from compress_core.files.codegen.recover import calib_images, recovers
from compress_core.files.codegen.target import Target, literal
from compress_core.models import REGISTRY

INT8_IMAGES = 256  # the Workbench's calib_samples: int8 static calibrates on these


def install_lines(recipe: Recipe, t: Target, imports: list[str]) -> list[str]:
    """The docstring's "Install:" lines: every package the file imports (``imports``: its import lines). The
    package ``compress_core`` is named only where the function itself calls it."""
    p = recipe.prune
    need = ["torch"] + (["torch-pruning"] if p.active and p.kind == "structured" else [])
    lines = [f"Install: pip install {' '.join(need)}"]
    ours = any("compress_core" in i for i in imports)
    why = [
        *(["the recovery step (compress_core)"] if recovers(recipe) else []),
        *(["the lines marked compress_core"] if ours and not recovers(recipe) else []),
        *(["the try-out below (python prunescope_recipe.py)"] if t.zoo else []),
    ]
    if why:
        lines.append(f"         and PruneScope, for {' and '.join(why)}:")
        lines.append("         pip install -e . in a PruneScope checkout (the package named prunescope).")
    return lines


def card_mode(card: Mapping[str, Any]) -> str:
    """The evaluation mode of a measured result: its set's name ends in ``-quickN`` for the quick subset."""
    return "quick" if "-quick" in str(card.get("eval_set", "")) else "full"


def card_lines(card: Mapping[str, Any] | None, t: Target) -> list[str]:
    """``CARD_ACCURACY`` and ``CARD_EVAL``: the accuracy the card showed and the images it was measured on."""
    if not t.zoo:
        return []
    acc = card.get("accuracy") if card else None
    if acc is None or (isinstance(acc, float) and math.isnan(acc)):
        return [
            "CARD_ACCURACY: float | None = None  # generated before PruneScope measured this recipe: nothing to match",
            'CARD_EVAL = "quick"  # the images to evaluate on: data.sets.eval_set(dataset, "quick") or "full"',
        ]
    assert card is not None
    n = card.get("eval_samples")
    return [
        f"CARD_ACCURACY: float | None = {float(acc)!r}  # top-1 on PruneScope's card for this recipe",
        f"CARD_EVAL = {literal(card_mode(card))}  # its images: {card.get('eval_set')}"
        + (f" ({int(n):,} test images)" if n else ""),
    ]


def main_lines(recipe: Recipe, t: Target) -> list[str]:
    """The ``__main__`` block of a zoo model's file (none for other models)."""
    if not t.zoo:
        return []
    dataset = literal(REGISTRY[t.model_id].dataset)
    n_calib = calib_images(recipe, INT8_IMAGES)
    calib = f"calibration_batches({dataset}, {n_calib}, 64)" if n_calib else "None"
    fp32_conv = not recipe.quant.int8 and t.layers is not None and any(k == "Conv2d" for _, k in t.layers)
    lines = [
        "",
        "",
        'if __name__ == "__main__":  # try it on PruneScope\'s copy of the model, on the images of its card',
        "    import sys",
        "",
        "    from compress_core.base.paths import MissingFileError",
        "    from compress_core.data.sets import calibration_batches, eval_set",
        *([] if recipe.quant.int8 else ["    from compress_core.engine.measure import count_params"]),
        "    from compress_core.models import load",
        "",
        "    try:  # the weights, the training images PruneScope calibrates on and the card's test images",
        f"        model = load({literal(t.model_id)})",
        f"        calib = {calib}",
        f"        data = eval_set({dataset}, CARD_EVAL)",
        "    except MissingFileError as exc:",
        '        print(f"not evaluated: the data is not here ({exc})")',
        "        sys.exit(0)",
        "    out = prunescope_recipe(model, calib).eval()",
    ]
    if not recipe.quant.int8:
        lines.append('    print("parameters (total, non-zero):", count_params(out))')
    if fp32_conv:
        lines.append("    out = out.to(memory_format=torch.channels_last)  # as PruneScope evaluates fp32 conv nets")
    fmt = ".contiguous(memory_format=torch.channels_last)" if fp32_conv else ""
    return [
        *lines,
        f"    with torch.no_grad():  # top-1 in batches of {EVAL_BATCH}, as PruneScope evaluates",
        f"        preds = torch.cat([out(x{fmt}).argmax(1) for x in data.x.split({EVAL_BATCH})])",
        "    correct = int((preds == data.y).sum())",
        '    print(f"top-1 on {data.name}: {correct}/{len(data)} = {correct / len(data):.2%}", end="")',
        '    print(f"; PruneScope\'s card: {CARD_ACCURACY:.2%}" if CARD_ACCURACY is not None else "")',
        "    if len(sys.argv) > 1:  # python prunescope_recipe.py preds.pt: the predictions, for your own comparison",
        "        torch.save(preds, sys.argv[1])",
    ]
