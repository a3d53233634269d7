"""Honest measurement: accuracy with its uncertainty, parameter and MAC counts, sizes, latency."""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from compress_core.base import lanes
from compress_core.data.sets import TensorSet

EVAL_BATCH = 100  # fastest batch on this 2-core machine (shared/data README)


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a binomial proportion (sound at 0 % and 100 % too)."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@torch.no_grad()
def predictions(
    model: nn.Module,
    data: TensorSet,
    batch_size: int = EVAL_BATCH,
    memory_format: torch.memory_format = torch.contiguous_format,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Top-1 predicted class for every sample (int64). The batches run in ``lanes`` (one per torch
    thread, each batch on one thread: faster than every op on all threads, see ``lanes``);
    ``progress(batches done, batches)`` hears every finished batch on the calling thread."""
    return _forward(model, data, batch_size, memory_format, progress, keep_probs=False)[0]


@torch.no_grad()
def predictions_and_probs(
    model: nn.Module,
    data: TensorSet,
    batch_size: int = EVAL_BATCH,
    memory_format: torch.memory_format = torch.contiguous_format,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``predictions`` and, from the same forward pass, the softmax probabilities (float32, N x C: what
    ``bench.forgets`` compares). The top-1 is the argmax of the logits, exactly as ``predictions``."""
    return _forward(model, data, batch_size, memory_format, progress, keep_probs=True)


def _forward(
    model: nn.Module,
    data: TensorSet,
    batch_size: int,
    memory_format: torch.memory_format,
    progress: Callable[[int, int], None] | None,
    keep_probs: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()

    def run(_lane: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x.contiguous(memory_format=memory_format) if x.dim() == 4 else x)
        probs = torch.softmax(logits.float(), 1) if keep_probs else torch.empty(0)
        return logits.argmax(1), probs

    out = lanes.run(run, [x for x, _ in data.batches(batch_size)], progress)
    if not out:
        return torch.empty(0, dtype=torch.long), torch.empty(0, 0)
    return torch.cat([t for t, _ in out]), torch.cat([p for _, p in out]) if keep_probs else torch.empty(0)


@dataclass(frozen=True)
class Accuracy:
    accuracy: float
    ci_low: float
    ci_high: float
    correct: int
    n: int
    agreement: float | None  # fraction of samples where the top-1 matches the dense model's


def accuracy(preds: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor | None = None) -> Accuracy:
    n = len(labels)
    correct = int((preds == labels).sum())
    lo, hi = wilson_interval(correct, n)
    agree = float((preds == reference).float().mean()) if reference is not None and n else None
    return Accuracy(correct / n if n else float("nan"), lo, hi, correct, n, agree)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) over the model's parameters, counting shared tensors once."""
    seen: set[int] = set()
    total = nonzero = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        nonzero += int(torch.count_nonzero(p))
    return total, nonzero


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass for one sample, from the actual layer shapes
    (dense kernels: zeroed weights still cost a MAC, which is the point of the comparison)."""
    macs = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs += out.numel() * k

    def linear_hook(m: nn.Linear, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if macs == 0:  # a TorchScript / torch.export graph has no nn.Conv2d/Linear modules to hook: count its ops
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, *input_shape))
        macs = counter.get_total_flops() // 2
    return macs


def state_dict_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def zlib_size(model: nn.Module) -> int:
    """Bytes of the zlib-compressed (level 9) ``torch.save`` state_dict."""
    return len(zlib.compress(state_dict_bytes(model), 9))


@dataclass(frozen=True)
class Latency:
    ms_p50: float
    ms_iqr: float
    batch: int
    threads: int
    runs: int


def latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch: int = 1,
    threads: int = 1,
    min_run_time: float = 0.3,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Latency:
    """Median and IQR of one forward pass, timed by ``torch.utils.benchmark`` with a time budget."""
    import logging

    # torch.utils.benchmark imports cpp_extension, which warns about CUDA on CPU-only machines.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark

    x = torch.randn(batch, *input_shape)
    if x.dim() == 4:
        x = x.contiguous(memory_format=memory_format)
    model.eval()
    with torch.no_grad():
        model(x)  # warm-up: first call per shape is much slower
        timer = benchmark.Timer(
            stmt="model(x)",
            globals={"model": model, "x": x},
            num_threads=threads,
            setup="import torch; torch.set_grad_enabled(False)",
        )
        m = timer.blocked_autorange(min_run_time=min_run_time)
    return Latency(m.median * 1e3, m.iqr * 1e3, batch, threads, len(m.times))


def forward_fn(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch: int = 1,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Callable[[], object]:
    """One forward pass of ``model`` on a fixed random batch, as a callable for ``timing.paired``
    (run it under ``torch.no_grad()``; the model is put in eval mode)."""
    x = torch.randn(batch, *input_shape)
    if x.dim() == 4:
        x = x.contiguous(memory_format=memory_format)
    model.eval()
    return lambda: model(x)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block on ``threads`` intra-op threads (what the result records), then restore."""
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
