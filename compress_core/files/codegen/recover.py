"""Post-training recovery as code: the lines that keep what PruneScope's recovery needs (the dense copy, the
unstructured keep-masks, the k-bit codes) and the one ``compress_core.engine.recover.recover_`` call that runs
it. Recovery has no torch or torch-pruning equivalent: it is PruneScope's own step, and the comments say so.

The calibration images are the ones the Workbench recovers on: ``recover.BN_SAMPLES`` training images in
batches of ``recover.CALIBRATION_BATCH`` (``data.sets.calibration_batches``), seeded like the recipe."""

from __future__ import annotations

from compress_core.base.recipe import Recipe
from compress_core.engine.recover import BN_SAMPLES, CALIBRATION_BATCH, RECOVERY
from compress_core.files.codegen.target import literal

RECOVER = "from compress_core.engine.recover import recover_  # PruneScope's post-training recovery"
QUANTIZE = "from compress_core.engine.quantize import quantize_weights_  # PruneScope's k-bit scheme, with its codes"
QUANT_SPEC = "from compress_core.base.recipe import QuantSpec"
RECOVERY_IMAGES = BN_SAMPLES  # the calibration images the Workbench recovers on (recover.RECONSTRUCT_SAMPLES too)


def recovers(recipe: Recipe) -> bool:
    """Whether the Workbench runs the recipe's recovery (it skips an uncompressed recipe)."""
    return recipe.recovery != "none" and recipe.compressed


def before_tuning(recipe: Recipe) -> bool:
    """A recipe that prunes and fine-tunes recovers right after pruning (float weights), so that tuning starts
    from the recovered model; every other recipe recovers after quantizing the weights, before int8."""
    return recipe.finetune is not None and recipe.prune.active


def keeps_masks(recipe: Recipe) -> bool:
    """Reconstruction of unstructured pruning needs the keep-masks (``prune.remove`` drops them)."""
    p = recipe.prune
    return recovers(recipe) and recipe.recovery == "reconstruct" and p.active and p.kind == "unstructured"


def keeps_codes(recipe: Recipe) -> bool:
    """Reconstruction of k-bit / fp16 weights keeps them on their grid and updates their integer codes: the
    weights are quantized by PruneScope's ``quantize_weights_`` (which returns the codes) instead of the plain
    ``fake_quantize`` lines. A recipe that recovers before tuning does so on float weights only."""
    q, reconstructs = recipe.quant, recovers(recipe) and recipe.recovery == "reconstruct"
    return reconstructs and q.active and not q.int8 and not before_tuning(recipe)


def calib_images(recipe: Recipe, int8_images: int) -> int:
    """Training images the file's ``calib_batches`` should hold: recovery's, else int8 calibration's."""
    if recovers(recipe):
        return RECOVERY_IMAGES
    return int8_images if recipe.quant.int8 else 0


def dense_lines(recipe: Recipe, imports: list[str]) -> list[str]:
    if not recovers(recipe):
        return []
    imports.append("import copy")
    return ["dense = copy.deepcopy(model)  # the dense model: recovery fits the compressed one back to its outputs"]


def mask_lines(recipe: Recipe) -> list[str]:
    if not keeps_masks(recipe):
        return []
    return [
        "masks = {n: m.weight_mask.detach().clone() for n, m in layers.items()}  # reconstruction keeps these zeros"
    ]


def kbit_lines(imports: list[str]) -> list[str]:
    """k-bit weights through PruneScope's own ``quantize_weights_`` (the codes reconstruction updates)."""
    imports.append(QUANTIZE)
    return [
        "layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]",
        "qcodes = quantize_weights_(layers, QUANT)  # every layer, skip list or not; weights = their codes",
    ]


def quant_constant(recipe: Recipe, imports: list[str]) -> list[str]:
    """``QUANT = QuantSpec(...)``: the recipe's k-bit / fp16 weights, which reconstruction keeps on their grid."""
    if not keeps_codes(recipe):
        return []
    q = recipe.quant
    imports.append(QUANT_SPEC)
    per_layer = f", layer_bits={q.layer_bits!r}" if q.layer_bits else ""
    return [
        f"QUANT = QuantSpec({q.bits}, {literal(q.scheme)}, {literal(q.granularity)}{per_layer})"
        "  # the recipe's weights (simulated)"
    ]


def recovery_lines(recipe: Recipe, imports: list[str]) -> list[str]:
    """The recovery call, after pruning and simulated quantization, before int8 conversion (as the Workbench)."""
    if not recovers(recipe):
        return []
    imports.append(RECOVER)
    level = RECOVERY[recipe.recovery]
    extra = ", masks=masks" if keeps_masks(recipe) else ""
    extra += ", qcodes=qcodes or None, quant=QUANT" if keeps_codes(recipe) else ""
    when = "before fine-tuning, as PruneScope does" if before_tuning(recipe) else "on the float weights"
    return [
        f"# Recovery: {level.label.lower()}, {when}.",
        "# No torch or torch-pruning call does this: it is PruneScope's own step, compress_core.engine.recover's",
        "# recover_, the call the card was measured with, on the same images: the recipe's seed and",
        f"# {RECOVERY_IMAGES} training images in batches of {CALIBRATION_BATCH} (calib_batches).",
        "if not calib_batches:",
        f'    raise ValueError("recovery needs calib_batches: {RECOVERY_IMAGES} training images, in batches")',
        f"recover_(model, dense, {literal(recipe.recovery)}, calib_batches{extra}, seed={recipe.prune.seed})",
    ]
