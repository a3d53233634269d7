"""Paired timings on a runtime: each runtime's dense fp32 session, a deployed recipe timed against it (one
measurement per structure and kernels), and the runtime's dense speed-up over eager PyTorch (once per process)."""

from __future__ import annotations

import copy
import dataclasses
import threading

import torch
from torch import nn

from compress_core.base import timing
from compress_core.base.lru import LRU
from compress_core.base.records import Compressed
from compress_core.deploy.runtimes import Deployed, get_runtime
from compress_core.engine import measure

# (model id, runtime, batch, threads) -> (runtime dense speed-up over eager dense, runtime ms, eager ms)
_VS_EAGER: dict[tuple, tuple[float, float, float]] = {}


def structure_of(model: nn.Module) -> tuple:
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items() if hasattr(v, "shape"))


def paired(
    cand: Deployed,
    base: Deployed | nn.Module,
    shape: tuple[int, ...],
    threads: int,
    budget: float,
    fmt: torch.memory_format = torch.contiguous_format,
) -> timing.Paired:
    """``cand`` timed against ``base`` (a session, or an eager model) in interleaved rounds."""
    with measure.torch_threads(threads):
        base_fn = measure.forward_fn(base, shape, cand.batch, fmt) if isinstance(base, nn.Module) else base.runner()
        return timing.paired(cand.runner(), base_fn, budget_s=budget)


class RuntimeTimings:
    """One dense model's runtime timings (``RuntimeBench.timings``); shares the RuntimeBench's lock, so one
    bench's timings run one at a time (they would compete for the same cores)."""

    def __init__(self, dense: nn.Module, model_id: str, shape: tuple[int, ...], lock: threading.RLock) -> None:
        self.model, self.model_id, self.shape, self.lock = dense, model_id, shape, lock
        self.dense: dict[tuple, Deployed] = {}  # (runtime, batch, threads): the runtime's dense fp32
        self.timed: LRU[timing.Paired] = LRU(64)  # (structure, int8, runtime, batch, threads)

    def dense_session(self, runtime: str, batch: int, threads: int) -> Deployed:
        with self.lock:
            key = (runtime, batch, threads)
            if key not in self.dense:
                self.dense[key] = get_runtime(runtime).deploy(self.model, self.shape, batch, threads)
            return self.dense[key]

    def vs_eager(self, runtime: str, batch: int, threads: int, budget: float) -> tuple[float, float, float]:
        """(speed-up of the runtime's dense fp32 over eager PyTorch dense fp32, its ms, eager ms): once per
        process. From batch 32 up eager runs in the faster of NCHW and channels_last (as the Workbench times it)."""
        key = (self.model_id, runtime, batch, threads)
        with self.lock:
            if key not in _VS_EAGER:
                _VS_EAGER[key] = self._time_vs_eager(runtime, batch, threads, budget)
            return _VS_EAGER[key]

    def _time_vs_eager(self, runtime: str, batch: int, threads: int, budget: float) -> tuple[float, float, float]:
        dense = self.dense_session(runtime, batch, threads)
        pairs = [paired(dense, self.model, self.shape, threads, budget)]
        if batch >= 32 and len(self.shape) == 3 and any(isinstance(m, nn.Conv2d) for m in self.model.modules()):
            cl = copy.deepcopy(self.model).to(memory_format=torch.channels_last)
            pairs.append(paired(dense, cl, self.shape, threads, budget, torch.channels_last))
        best = min(pairs, key=lambda p: p.speedup)  # the faster eager format gives the smaller speed-up
        if runtime == "torch":  # eager PyTorch is the reference itself
            return 1.0, best.baseline_ms_p50, best.baseline_ms_p50
        return best.speedup, best.ms_p50, best.baseline_ms_p50

    def latency_on(self, int8: bool, dep: Deployed, comp: Compressed, runtime: str, budget: float) -> timing.Paired:
        """``dep`` paired with the runtime's dense fp32 session; one measurement per structure and kernels."""
        key = (structure_of(comp.float_model), int8, runtime, dep.batch, dep.threads)
        with self.lock:
            if (hit := self.timed.get(key)) is None:
                dense = self.dense_session(runtime, dep.batch, dep.threads)
                same = not int8 and key[0] == structure_of(self.model)
                hit = paired(dep, dense, self.shape, dep.threads, budget)
                if same:  # the dense structure on fp32 kernels is the dense model for timing
                    hit = dataclasses.replace(hit, speedup=1.0, baseline_ms_p50=hit.ms_p50, baseline_ms_iqr=hit.ms_iqr)
                self.timed.put(key, hit)
            return hit
