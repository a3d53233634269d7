"""Pieces of ``pipeline.Workbench`` that need no Workbench: the structure key latencies are cached by, the
chunked evaluation that reports progress, and the Result fields of one paired latency measurement."""

from __future__ import annotations

import torch
from torch import nn

from . import measure, timing
from .data import TensorSet
from .records import Progress

EVAL_CHUNK = 200  # images per progress report while evaluating (each report is a chance to yield)


def structure_key(model: nn.Module, kernels: str) -> tuple:
    return (kernels, tuple((k, tuple(v.shape)) for k, v in model.state_dict().items() if hasattr(v, "shape")))


def chunked_predictions(
    model: nn.Module, data: TensorSet, memory_format: torch.memory_format, progress: Progress
) -> torch.Tensor:
    """Top-1 predictions on ``data`` in chunks of ``EVAL_CHUNK`` images, each chunk reported to ``progress``."""
    n, out = len(data.x), []
    for lo in range(0, n, EVAL_CHUNK):
        progress(lo / max(n, 1), f"{lo:,} of {n:,} images")
        chunk = TensorSet(data.name, data.x[lo : lo + EVAL_CHUNK], data.y[lo : lo + EVAL_CHUNK])
        out.append(measure.predictions(model, chunk, memory_format=memory_format))
    progress(1.0, f"{n:,} images")
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


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
