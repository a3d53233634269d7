"""Deployed sessions per recipe and paired runtime timings, cached beside each Workbench."""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
import weakref
from typing import Any, Protocol

import torch
from torch import nn

from compress_core.base import timing
from compress_core.base.lru import LRU
from compress_core.base.recipe import Recipe
from compress_core.base.records import Compressed, Progress, Result
from compress_core.deploy.runtimes import RUNTIMES, Deployed, available_runtimes, get_runtime
from compress_core.deploy.runtimes.torch_deployed import TorchDeployed
from compress_core.engine import measure

RUNTIME_KEYS = tuple(RUNTIMES)
STATIC_EVAL_BATCH = 100  # static-batch sessions (OpenVINO) predict the test set in batches of this many
STAIRCASE = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25)  # fractions of channels kept
ACROSS_COLUMNS = [
    "runtime",
    "latency_ms_p50",
    "latency_ms_iqr",
    "speedup",
    "speedup_vs_eager",
    "accuracy",
    "agreement",
    "deploy_file_bytes",
    "latency_kernels",
    "deploy_s",
    "error",
]


class Bench(Protocol):
    """What this module reads of a ``pipeline.Workbench``."""

    model_id: str
    model: nn.Module
    spec: Any

    def evaluate(
        self,
        recipe: Recipe,
        mode: str = ...,
        latency_batch: int = ...,
        threads: int | None = ...,
        latency_budget_s: float = ...,
        measure_latency: bool = ...,
        compressed: Compressed | None = ...,
        progress: Progress | None = ...,
    ) -> Result: ...
    def compressed(self, recipe: Recipe, progress: Progress | None = ...) -> Compressed: ...
    def compress(self, recipe: Recipe, progress: Progress | None = ...) -> Compressed: ...
    def calib(self) -> list[torch.Tensor]: ...
    def eval_data(self, mode: str = ...) -> Any: ...
    def dense_predictions(self, data: Any) -> torch.Tensor: ...
    def latency_of(
        self, model: nn.Module, kernels: str, batch: int, threads: int, budget: float, progress: Progress | None = ...
    ) -> tuple[timing.Paired, str]: ...


class _State:
    """One Workbench's runtime caches (kept beside it, dropped with it)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.sessions: LRU[Deployed] = LRU(8)  # (recipe json, runtime, batch, threads)
        self.latest: LRU[Deployed] = LRU(8)  # (recipe json, runtime): the last session, to reconfigure
        self.dense: dict[tuple, Deployed] = {}  # (runtime, batch, threads): the runtime's dense fp32
        self.timings: LRU[timing.Paired] = LRU(64)  # (structure, int8, runtime, batch, threads)
        self.results: LRU[dict] = LRU(256)
        self.deploy_s: dict[tuple, float] = {}  # (recipe json, runtime, batch): export + compile seconds


_STATES: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()
# (model id, runtime, batch, threads) -> (runtime dense speed-up over eager dense, runtime ms, eager ms)
_VS_EAGER: dict[tuple, tuple[float, float, float]] = {}


def state_of(wb: Bench) -> _State:
    with _STATES_LOCK:
        if wb not in _STATES:
            _STATES[wb] = _State()
        return _STATES[wb]


def available() -> dict[str, str | None]:
    """Every runtime key with None (usable here) or the one-line reason it is not."""
    return available_runtimes()


def resolve_threads(threads: int | None) -> int:
    return threads or torch.get_num_threads()


def structure_of(model: nn.Module) -> tuple:
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items() if hasattr(v, "shape"))


# -- sessions ---------------------------------------------------------------------------------------
def _torch_session(comp: Compressed, shape: tuple[int, ...], batch: int, threads: int) -> Deployed:
    """The Workbench's own compressed model as the torch runtime's deployment (no re-quantization)."""
    int8 = comp.kernels != "fp32"
    return TorchDeployed(comp.model, f"torch {comp.kernels}", shape, batch, threads, int8, "pt" if int8 else "pt2")


def session(
    wb: Bench, recipe: Recipe, runtime: str, batch: int = 1, threads: int | None = None, comp: Compressed | None = None
) -> Deployed:
    """The recipe deployed on ``runtime`` (cached); raises ``RuntimeUnsupported`` with one line."""
    threads, st, rt = resolve_threads(threads), state_of(wb), get_runtime(runtime)
    key = (recipe.to_json(), runtime, batch, threads)
    with st.lock:
        if (hit := st.sessions.get(key)) is not None:
            return hit
        comp = comp or wb.compressed(recipe)
        shape = tuple(wb.spec.input_shape)
        sibling = st.latest.get(key[:2])  # the same file(s) at another batch or thread count
        dep = sibling.reconfigure(batch, threads) if sibling is not None else None
        if dep is None and runtime == "torch":
            dep = _torch_session(comp, shape, batch, threads)
        elif dep is None:
            t0 = time.perf_counter()
            int8 = recipe.quant.int8
            dep = rt.deploy(comp.float_model, shape, batch, threads, int8, wb.calib() if int8 else None)
            st.deploy_s[(key[0], runtime, batch)] = time.perf_counter() - t0
        st.sessions.put(key, dep)
        st.latest.put(key[:2], dep)
        return dep


def _dense_session(wb: Bench, runtime: str, batch: int, threads: int) -> Deployed:
    st = state_of(wb)
    with st.lock:
        key = (runtime, batch, threads)
        if key not in st.dense:
            st.dense[key] = get_runtime(runtime).deploy(wb.model, tuple(wb.spec.input_shape), batch, threads)
        return st.dense[key]


def _paired(
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


def vs_eager(wb: Bench, runtime: str, batch: int, threads: int, budget: float) -> tuple[float, float, float]:
    """(speed-up of the runtime's dense fp32 over eager PyTorch dense fp32, its ms, eager ms): once per process.
    From batch 32 up eager runs in the faster of NCHW and channels_last (like ``Workbench._both_formats``)."""
    key = (wb.model_id, runtime, batch, threads)
    with state_of(wb).lock:  # one session's timings at a time: they would compete for the same cores
        if key not in _VS_EAGER:
            _VS_EAGER[key] = _time_vs_eager(wb, runtime, batch, threads, budget)
        return _VS_EAGER[key]


def _time_vs_eager(wb: Bench, runtime: str, batch: int, threads: int, budget: float) -> tuple[float, float, float]:
    shape = tuple(wb.spec.input_shape)
    dense = _dense_session(wb, runtime, batch, threads)
    pairs = [_paired(dense, wb.model, shape, threads, budget)]
    if batch >= 32 and len(shape) == 3 and any(isinstance(m, nn.Conv2d) for m in wb.model.modules()):
        cl = copy.deepcopy(wb.model).to(memory_format=torch.channels_last)
        pairs.append(_paired(dense, cl, shape, threads, budget, torch.channels_last))
    best = min(pairs, key=lambda p: p.speedup)  # the faster eager format gives the smaller speed-up
    if runtime == "torch":  # eager PyTorch is the reference itself
        return 1.0, best.baseline_ms_p50, best.baseline_ms_p50
    return best.speedup, best.ms_p50, best.baseline_ms_p50


def latency_on(
    wb: Bench, recipe: Recipe, dep: Deployed, comp: Compressed, runtime: str, budget: float
) -> timing.Paired:
    """``dep`` paired with the runtime's dense fp32 session; one measurement per structure and kernels."""
    st = state_of(wb)
    key = (structure_of(comp.float_model), recipe.quant.int8, runtime, dep.batch, dep.threads)
    with st.lock:
        if (hit := st.timings.get(key)) is None:
            dense = _dense_session(wb, runtime, dep.batch, dep.threads)
            same = not recipe.quant.int8 and key[0] == structure_of(wb.model)
            hit = _paired(dep, dense, tuple(wb.spec.input_shape), dep.threads, budget)
            if same:  # the dense structure on fp32 kernels is the dense model for timing
                hit = dataclasses.replace(hit, speedup=1.0, baseline_ms_p50=hit.ms_p50, baseline_ms_iqr=hit.ms_iqr)
            st.timings.put(key, hit)
        return hit
