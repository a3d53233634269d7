"""The stages a recipe runs, in order, each on its own spec and one calibration bundle:

1. ``prune_stage``: a deep copy of the model, pruned by the registered pruner of ``recipe.prune.kind``
   (one-shot, or gradually per ``recipe.finetune.schedule`` with a fine-tuning cycle after each step),
   then fine-tuned if the recipe says so (``finetune.finetune_``).
2. ``quantize_stage``: simulated k-bit / fp16 weights (``quantize``), then post-training recovery
   (``recover_stage``: BatchNorm re-estimation or layer-wise reconstruction against the dense model, on
   training images), then real int8 kernels (``int8``) — recovery always works on float weights, before
   int8 conversion. A recipe that fine-tunes recovers right after pruning instead, so fine-tuning starts
   from the recovered model.

``apply_recipe`` runs them all. The input model is never changed; the ``Compressed`` record says what was
done and what is simulated. ``pipeline.Workbench`` calls these with its caches and data.
"""

from __future__ import annotations

import copy
import time

from torch import nn

from compress_core.base.recipe import FinetuneSpec, QuantSpec, Recipe
from compress_core.base.records import NO_CALIBRATION, Calibration, Compressed, Progress, span
from compress_core.engine.finetune import codebook_spec, finetune_, finetune_codebooks_
from compress_core.engine.int8 import convert_int8
from compress_core.engine.prune import PruneContext, Pruned, Pruner, get_pruner
from compress_core.engine.prune.kinds import ScoreSource
from compress_core.engine.prune.layers import prunable_layers
from compress_core.engine.prune.schedule import prune_gradually
from compress_core.engine.quantize import describe, quantize_weights_
from compress_core.engine.recover import check_level, recover_
from compress_core.models import ModelSpec

NO_LAYERS = (
    "this model has no Conv2d/Linear module to {what} (an uploaded TorchScript or torch.export graph "
    "that matches no zoo architecture has none): upload its state_dict instead"
)


def apply_recipe(
    model: nn.Module,
    recipe: Recipe,
    spec: ModelSpec | None = None,
    calibration: Calibration = NO_CALIBRATION,
    scores: ScoreSource | None = None,
    teacher: nn.Module | None = None,
    progress: Progress | None = None,
) -> Compressed:
    """Apply ``recipe`` to a deep copy of ``model``. ``calibration`` holds training batches for
    data-driven criteria, fine-tuning and int8 calibration; ``scores`` may supply cached scores."""
    out = prune_stage(model, recipe, spec, calibration, scores, teacher, progress)
    finish_stages(out, spec, calibration, model, teacher, progress)
    return out


def finish_stages(
    out: Compressed,
    spec: ModelSpec | None,
    calibration: Calibration,
    dense: nn.Module,
    teacher: nn.Module | None = None,
    progress: Progress | None = None,
) -> None:
    """Everything after pruning and fine-tuning, on ``out`` in place: quantization with its recovery, then
    codebook tuning. The Workbench runs this on a copy of a cached fine-tuned model."""
    quantize_stage(
        out, out.recipe.quant, calibration, spec.input_shape if spec else None, dense=dense, progress=progress
    )
    codebook_stage(out, spec, teacher if teacher is not None else dense, progress)


def prune_stage(
    model: nn.Module,
    recipe: Recipe,
    spec: ModelSpec | None = None,
    calibration: Calibration = NO_CALIBRATION,
    scores: ScoreSource | None = None,
    teacher: nn.Module | None = None,
    progress: Progress | None = None,
) -> Compressed:
    """Prune (and fine-tune, per the recipe's schedule) a deep copy of ``model``; no quantization yet."""
    work = copy.deepcopy(model).eval()
    out = Compressed(model=work, float_model=work, recipe=recipe)
    p, ft = recipe.prune, recipe.finetune
    pruner = get_pruner(p.kind) if p.active else None
    if pruner is not None:
        if not prunable_layers(work, ()):
            raise ValueError(NO_LAYERS.format(what="prune"))
        if p.kind == "structured" and spec is None:
            raise ValueError("structured pruning needs the model spec (input shape)")
    ctx = PruneContext(spec.input_shape if spec else None, calibration, scores)
    if pruner is not None and ft is not None and ft.schedule != "oneshot":
        prune_gradually_(out, pruner, ctx, ft, _dataset(spec), teacher, progress)
    else:
        if pruner is not None:
            _record(out, pruner.prune_(work, p, ctx))
        if ft is not None and recipe.recovery != "none" and pruner is not None:  # tuning starts from it
            recover_stage(out, model, calibration, quantized=False)
        if ft is not None:
            t0 = time.perf_counter()
            out.history += finetune_(
                work, ft, _dataset(spec), out.masks, teacher, span(progress, 0.0, 1.0), sparsity=_sparsity(out)
            )
            _done(progress, t0)
    if pruner is not None and pruner.note:
        out.simulated.append(pruner.note)
    return out


def quantize_stage(
    out: Compressed,
    q: QuantSpec,
    calibration: Calibration = NO_CALIBRATION,
    input_shape: tuple[int, ...] | None = None,
    dense: nn.Module | None = None,
    progress: Progress | None = None,
) -> None:
    """Apply ``q`` to ``out.float_model`` in place (simulated k-bit, fp16 or int8 kernels), with the
    recipe's recovery (against ``dense``; it reports to ``progress``) between the float weights and the
    int8 conversion."""
    layers = prunable_layers(out.float_model, skip=())
    if q.active and not layers:
        raise ValueError(NO_LAYERS.format(what="quantize"))
    unknown = sorted({n for n, _ in q.layer_bits} - {n for n, _ in layers})
    if unknown:
        raise ValueError(
            f"layer_bits names no Conv2d/Linear layer of this model: {', '.join(unknown)} "
            f"(layers: {', '.join(n for n, _ in layers)})"
        )
    if not q.int8 and q.active:  # bits < 32 somewhere (the default, or a layer_bits override)
        out.qcodes = quantize_weights_(layers, q)
        out.simulated.append(describe(q) + "; latency is that of the fp32 kernels")
    if out.recipe.recovery != "none" and out.recovery is None and out.recipe.compressed:
        if dense is None:
            raise ValueError("recovery needs the dense model to reconstruct against; pass dense=")
        recover_stage(out, dense, calibration, progress=span(progress, 0.0, 1.0, "recovery: "))
    if q.int8:
        convert_int8(out, q, calibration, input_shape)


def tunes_codebooks(recipe: Recipe) -> bool:
    """k-means weight sharing after fine-tuning: the shared values are trained too (Deep Compression)."""
    q = recipe.quant
    return recipe.finetune is not None and q.scheme == "kmeans" and q.bits <= 8 and not q.int8


def codebook_stage(
    out: Compressed, spec: ModelSpec | None, teacher: nn.Module | None, progress: Progress | None = None
) -> None:
    """Deep Compression's trained quantization: after the float fine-tune (all of ``ft.epochs``), tune the
    k-means codebooks for ``finetune.CODEBOOK_SHARE`` x ``ft.epochs`` more, every layer tied to its codebook."""
    if not tunes_codebooks(out.recipe) or not out.qcodes or out.recipe.finetune is None:
        return
    t0 = time.perf_counter()
    out.history += finetune_codebooks_(
        out.float_model,
        out.qcodes,
        codebook_spec(out.recipe.finetune),
        _dataset(spec),
        out.masks,
        teacher,
        progress,
        sparsity=_sparsity(out),
    )
    _done(progress, t0)


def recover_stage(
    out: Compressed,
    dense: nn.Module,
    calibration: Calibration,
    quantized: bool = True,
    progress: Progress | None = None,
) -> None:
    """The recipe's post-training recovery of ``out.float_model`` on training images (never test data);
    ``dense`` is only read. The report (level, seconds, per-layer errors) goes to ``out.recovery``."""
    level = check_level(out.float_model, out.recipe.recovery)
    q = out.recipe.quant
    if level == "reconstruct" and q.scheme == "kmeans" and q.bits <= 8 and not q.int8:
        raise ValueError(
            "layer-wise reconstruction keeps weights on a uniform k-bit grid; k-means weight sharing "
            "has none: use recovery 'bn' (or fine-tuning, which trains the shared values)"
        )
    report = recover_(
        out.float_model,
        dense,
        level,
        calibration.recovery_images,
        masks=out.masks or None,
        qcodes=out.qcodes if out.qcodes else None,
        quant=q if quantized and q.active else None,  # before quantization (fine-tune recipes): float only
        seed=out.recipe.prune.seed,
        progress=progress,
    )
    out.recovery = report.to_dict()
    out.simulated.extend(report.notes)


def prune_gradually_(
    out: Compressed,
    pruner: Pruner,
    ctx: PruneContext,
    ft: FinetuneSpec,
    dataset: str,
    teacher: nn.Module | None,
    progress: Progress | None,
) -> None:
    """Prune in ``ft.steps`` steps of ``ft.schedule``, fine-tuning ``ft.epochs / steps`` after each, so
    schedules compare at equal training compute."""
    if ft.distill and teacher is None:
        teacher = copy.deepcopy(out.float_model).eval()  # still dense here: it is the teacher
    t0 = time.perf_counter()

    def after_step(t: int, n: int, target, state: Pruned) -> None:
        _record(out, state)
        label = f"cycle {t}/{n}, sparsity {target.sparsity:.1%}: "
        out.history += finetune_(
            out.float_model,
            ft,
            dataset,
            out.masks,
            teacher,
            span(progress, (t - 1) / n, t / n, label),
            epochs=ft.epochs / n,
            cycle=t,
            sparsity=target.sparsity,
        )

    _record(
        out,
        prune_gradually(
            out.float_model, out.recipe.prune, ft.schedule, ft.steps, pruner, ctx, Pruned(), after_step, progress
        ),
    )
    _done(progress, t0)


def _record(out: Compressed, pruned: Pruned) -> None:
    out.masks, out.structure = pruned.masks, pruned.structure


def _dataset(spec: ModelSpec | None) -> str:
    if spec is None:
        raise ValueError("fine-tuning needs the model spec (which dataset to train on); pass spec=")
    return spec.dataset


def _sparsity(out: Compressed) -> float | None:
    """Fraction pruned: zeros under the unstructured masks, else the recipe's nominal sparsity."""
    if not out.masks:
        return out.recipe.prune.sparsity if out.recipe.prune.active else None
    total = sum(m.numel() for m in out.masks.values())
    return 1.0 - sum(int(m.sum()) for m in out.masks.values()) / total


def _done(progress: Progress | None, t0: float) -> None:
    if progress is not None:
        progress(1.0, f"fine-tuning done in {time.perf_counter() - t0:.1f} s")
