"""Pieces of ``Workbench`` that need no Workbench: the structure key latencies are cached by, top-1
predictions with their softmax probabilities (reporting progress per batch), the ``forgets`` of an
evaluation, the notes on an evaluation set, and the Result fields of one paired latency measurement."""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from compress_core.base import timing
from compress_core.base.recipe import Recipe
from compress_core.base.records import Progress
from compress_core.bench.forgets import forgets
from compress_core.data.sets import TensorSet
from compress_core.engine import measure


def expensive(recipe: Recipe) -> bool:
    """Recipes whose compressed model is worth keeping: int8 conversion, structured pruning, fine-tuning."""
    return (
        recipe.quant.int8 or recipe.finetune is not None or (recipe.prune.active and recipe.prune.kind == "structured")
    )


def structure_key(model: nn.Module, kernels: str) -> tuple:
    return (kernels, tuple((k, tuple(v.shape)) for k, v in model.state_dict().items() if hasattr(v, "shape")))


def reported_predictions(
    model: nn.Module, data: TensorSet, memory_format: torch.memory_format, progress: Progress
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 predictions and softmax probabilities on ``data``, reported to ``progress`` before the first batch and
    after every batch of ``measure.EVAL_BATCH`` images (each report is a chance to yield: a stop there leaves at most
    the batches the lanes hold, a tenth of a second on ResNet-56, to finish)."""
    n, per = len(data.x), measure.EVAL_BATCH
    progress(0.0, f"0 of {n:,} images")

    def heard(done: int, _batches: int) -> None:
        seen = min(n, done * per)
        progress(seen / max(n, 1), f"{seen:,} of {n:,} images")

    return measure.predictions_and_probs(model, data, batch_size=per, memory_format=memory_format, progress=heard)


def fields_of(pair: timing.Paired, kernels: str) -> dict:
    """The Result fields of one paired latency measurement (``timing.LATENCY_FIELDS``)."""
    return {
        "latency_ms_p50": pair.ms_p50,
        "latency_ms_iqr": pair.ms_iqr,
        "latency_kernels": kernels,
        "dense_latency_ms_p50": pair.baseline_ms_p50,
        "speedup": pair.speedup,
        "speedup_spread": pair.speedup_spread,
        "latency_noisy": pair.noisy,
        "latency_load": pair.load_avg,
        "latency_note": pair.reason,
    }


def predict(model: nn.Module, kernels: str, data: TensorSet, progress: Progress | None = None) -> torch.Tensor:
    """Top-1 predictions (``predict_probs`` without the probabilities)."""
    return predict_probs(model, kernels, data, progress)[0]


def predict_probs(
    model: nn.Module, kernels: str, data: TensorSet, progress: Progress | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 predictions and softmax probabilities (float32, N x C) of one forward pass; fp32 conv nets run on a
    channels_last copy (1.4x faster on ResNet-20 at batch 100 here, identical predictions), the given model itself
    is never converted. With ``progress``, every batch is reported (``reported_predictions``)."""
    fmt = torch.contiguous_format
    if kernels == "fp32" and data.x.dim() == 4 and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model, fmt = copy.deepcopy(model).to(memory_format=torch.channels_last), torch.channels_last
    if progress is None:
        return measure.predictions_and_probs(model, data, memory_format=fmt)
    return reported_predictions(model, data, fmt, progress)


def forgets_on(
    data: TensorSet, dense_top1: torch.Tensor, dense_probs: torch.Tensor, top1: torch.Tensor, probs: torch.Tensor
) -> dict:
    """``bench.forgets`` of one evaluation on ``data`` as the Result's ``forgets`` dict (unlabelled images:
    agreement and KL only)."""
    labels = data.y if getattr(data, "labelled", True) else None
    return forgets(dense_probs, probs, labels, dense_top1=dense_top1, top1=top1).to_dict()


def eval_notes(data: TensorSet, mode: str, user_images: bool) -> list[str]:
    """What a Result says about the set it was evaluated on (the user's own images, or a quick subset)."""
    if user_images:
        notes = [
            f"evaluated on {len(data)} user images ({data.name}); calibration and importance data come "
            "from the same images"
        ]
        if not getattr(data, "labelled", True):
            notes.append(
                "unlabelled images: accuracy is not measured (NaN); agreement is the fraction of "
                "images whose top-1 class matches the dense model's"
            )
        return notes
    quick = f"accuracy on a stratified subset of {len(data)} test images (95 % CI shown)"
    return [quick] if mode == "quick" else []


def accuracies(preds: torch.Tensor, ref: torch.Tensor, data: TensorSet) -> tuple[measure.Accuracy, measure.Accuracy]:
    """(compressed, dense) accuracy of ``preds`` and the dense ``ref`` predictions on ``data``; NaN where the
    images are unlabelled (agreement only)."""
    acc = measure.accuracy(preds, data.y, ref)
    dense_acc = measure.accuracy(ref, data.y)
    if not getattr(data, "labelled", True):  # agreement with the dense model is all they can tell
        nan = float("nan")
        acc = dataclasses.replace(acc, accuracy=nan, ci_low=nan, ci_high=nan)
        dense_acc = dataclasses.replace(dense_acc, accuracy=nan)
    return acc, dense_acc
