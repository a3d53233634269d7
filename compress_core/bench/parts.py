"""Pieces of ``pipeline.Workbench`` that need no Workbench: the structure key latencies are cached by, the
evaluation that reports progress per batch, and the Result fields of one paired latency measurement."""

from __future__ import annotations

import torch
from torch import nn

from compress_core.base import timing
from compress_core.base.records import Progress
from compress_core.data.sets import TensorSet
from compress_core.engine import measure


def structure_key(model: nn.Module, kernels: str) -> tuple:
    return (kernels, tuple((k, tuple(v.shape)) for k, v in model.state_dict().items() if hasattr(v, "shape")))


def reported_predictions(
    model: nn.Module, data: TensorSet, memory_format: torch.memory_format, progress: Progress
) -> torch.Tensor:
    """Top-1 predictions on ``data``, reported to ``progress`` before the first batch and after every batch of
    ``measure.EVAL_BATCH`` images (each report is a chance to yield: a stop there leaves at most the batches the
    lanes hold, a tenth of a second on ResNet-56, to finish)."""
    n, per = len(data.x), measure.EVAL_BATCH
    progress(0.0, f"0 of {n:,} images")

    def heard(done: int, _batches: int) -> None:
        seen = min(n, done * per)
        progress(seen / max(n, 1), f"{seen:,} of {n:,} images")

    return measure.predictions(model, data, batch_size=per, memory_format=memory_format, progress=heard)


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
