"""Paired latency for one Workbench: a compressed model timed interleaved with the dense model, one
measurement per structure, kernels, batch and threads (equal shapes share one timing)."""

from __future__ import annotations

import copy
import dataclasses
import threading

import torch
from torch import nn

from compress_core.base import timing
from compress_core.base.records import Progress
from compress_core.bench.parts import structure_key
from compress_core.engine import measure

Timed = tuple[timing.Paired, str]  # the paired measurement and the kernels label (which memory format ran)


class PairedLatency:
    """The latency cache of one dense model: ``of`` measures once per key, ``time`` always measures,
    ``keep`` replaces a key's measurement (``Workbench.remeasure``). Shares the Workbench's lock."""

    def __init__(self, dense: nn.Module, input_shape: tuple[int, ...], lock: threading.RLock) -> None:
        self.dense = dense
        self.input_shape = tuple(input_shape)
        self.lock = lock
        self._timed: dict[tuple, Timed] = {}
        self._dense_structure: tuple | None = None

    def key(self, model: nn.Module, kernels: str, batch: int, threads: int) -> tuple:
        return (structure_key(model, kernels), batch, threads, self.both_formats(model, kernels, batch))

    def both_formats(self, model: nn.Module, kernels: str, batch: int) -> bool:
        """fp32 conv nets at batch >= 32 are timed in both memory formats and the faster counts (here
        channels_last made dense ResNet-20 1.35x faster at batch 128 but a 50 % structured one 0.8x).
        At batch < 32 the gain was 1.0-1.1x: not timed."""
        conv = len(self.input_shape) == 3 and any(isinstance(m, nn.Conv2d) for m in model.modules())
        return kernels == "fp32" and conv and batch >= 32

    def of(
        self, model: nn.Module, kernels: str, batch: int, threads: int, budget: float, progress: Progress | None = None
    ) -> Timed:
        """``model`` timed paired with the dense model (``timing.paired``); returns the measurement and
        the kernels label (which memory format ran). Latency depends only on structure and kernels,
        so equal structures share one measurement; a model with the dense model's own structure on
        fp32 kernels *is* the dense model for timing, so its speed-up is exactly 1."""
        key = self.key(model, kernels, batch, threads)
        with self.lock:
            if key not in self._timed:
                self._timed[key] = self.time(model, kernels, batch, threads, budget, progress)
            return self._timed[key]

    def keep(self, model: nn.Module, kernels: str, batch: int, threads: int, timed: Timed) -> None:
        with self.lock:
            self._timed[self.key(model, kernels, batch, threads)] = timed

    def time(
        self, model: nn.Module, kernels: str, batch: int, threads: int, budget: float, progress: Progress | None = None
    ) -> Timed:
        """A fresh paired measurement (not cached): in each memory format ``both_formats`` asks for, the faster."""
        if self._dense_structure is None:
            self._dense_structure = structure_key(self.dense, "fp32")
        same = kernels == "fp32" and structure_key(model, kernels) == self._dense_structure
        formats = [torch.contiguous_format]
        if self.both_formats(model, kernels, batch):
            formats.append(torch.channels_last)
        best: Timed | None = None
        for fmt in formats:
            contiguous = fmt == torch.contiguous_format
            cand = model if contiguous else copy.deepcopy(model).to(memory_format=fmt)
            base = cand if same else (self.dense if contiguous else copy.deepcopy(self.dense).to(memory_format=fmt))
            checkpoint = None if progress is None else (lambda: progress(0.5, "paired rounds"))
            with measure.torch_threads(threads):
                pair = timing.paired(
                    measure.forward_fn(cand, self.input_shape, batch, fmt),
                    measure.forward_fn(base, self.input_shape, batch, fmt),
                    budget_s=budget,
                    checkpoint=checkpoint,
                )
            if same:  # one model timed against itself: the rounds measure the noise, the speed-up is 1
                pair = dataclasses.replace(pair, speedup=1.0, baseline_ms_p50=pair.ms_p50, baseline_ms_iqr=pair.ms_iqr)
            label = kernels if contiguous else f"{kernels} channels_last"
            if best is None or pair.ms_p50 < best[0].ms_p50:
                best = (pair, label)
        assert best is not None
        return best
