"""Runtime measurements in a worker process: the pool that runs them (``RuntimeJobs``) and what it runs.

The dashboard measures on ONNX Runtime, OpenVINO and ExecuTorch in a separate process rather than a
thread of its server: exporting a model parses Python source (``torch.export``, ``torch.onnx``), and
CPython 3.11 can fail with "AST constructor recursion depth mismatch" when two threads build ASTs
at once (the other being Streamlit compiling a page); a process also keeps the export's CPU work
from holding the server's GIL. ``RuntimeJobs`` is one niced worker process; each job runs once per key
(later calls get the same future, its result or its error kept), jobs lost with a dead worker run again,
and ``paused`` stops the worker while the user's own measurement runs. The job functions below take
plain data and return plain data (dicts, DataFrames, bytes), so they cross the process boundary; the
worker keeps one ``RuntimeBench`` per model, so dense sessions, eager baselines and results are computed
once per worker.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import pandas as pd

from compress_core.base.recipe import Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.base.threads import configure_threads
from compress_core.bench import process
from compress_core.deploy import tables
from compress_core.deploy.bench import RuntimeBench

WORKER_NICE = 10  # the runtime worker's scheduling priority below the server's
MAX_JOBS = 512  # futures kept before the oldest finished ones are forgotten (the worker still caches them)


class RuntimeJobs:
    """One worker process running the runtime jobs of this module, each job once per key."""

    def __init__(self) -> None:
        self._pool = self._new_pool()
        self._futures: dict[tuple, Future] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _new_pool() -> ProcessPoolExecutor:
        # niced: on a small machine the user's next slider move wins the CPU over a background export
        return ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=os.nice, initargs=(WORKER_NICE,)
        )

    def submit(self, key: tuple, fn: Callable, *args: object) -> Future:
        with self._lock:
            fut = self._futures.get(key)
            if fut is None or (fut.done() and isinstance(fut.exception(), BrokenProcessPool)):
                try:
                    fut = self._pool.submit(fn, *args)
                except (BrokenProcessPool, RuntimeError):  # the worker died (e.g. out of memory): start another
                    self._pool = self._new_pool()
                    fut = self._pool.submit(fn, *args)
                self._futures[key] = fut
                if len(self._futures) > MAX_JOBS:
                    for k in [k for k, f in self._futures.items() if f.done()][: MAX_JOBS // 2]:
                        self._futures.pop(k, None)
            return fut

    # -- the jobs, keyed by what they measure ---------------------------------------------------
    def fastest(self, model_id: str, batch: int) -> Future:
        return self.submit(("fastest", model_id), fastest_runtime, model_id, batch)

    def result(self, model_id: str, recipe: Recipe, runtime: str, mode: str, batch: int) -> Future:
        args = (model_id, recipe.to_json(), runtime, mode, batch)
        return self.submit(("result", *args), runtime_result, *args)

    def staircase(self, model_id: str, recipe: Recipe, runtime: str, batch: int) -> Future:
        args = (model_id, recipe.to_json(), runtime, batch)
        return self.submit(("staircase", *args), staircase, *args)

    def across(self, model_id: str, recipe: Recipe, mode: str, batch: int) -> Future:
        args = (model_id, recipe.to_json(), mode, batch)
        return self.submit(("across", *args), across_runtimes, *args)

    def files(self, model_id: str, recipe: Recipe, runtime: str, batch: int) -> Future:
        args = (model_id, recipe.to_json(), runtime, batch)
        return self.submit(("files", *args), deploy_files, *args)

    # -- pausing --------------------------------------------------------------------------------
    def pause(self) -> list[int]:
        """Stop the worker process (SIGSTOP) while the user's own measurement runs; returns what to resume."""
        procs = getattr(self._pool, "_processes", None) or {}  # the executor's worker processes by pid
        paused = []
        for pid in list(procs):
            try:
                os.kill(pid, signal.SIGSTOP)
                paused.append(pid)
            except (OSError, AttributeError):  # gone already, or no signals here (Windows)
                continue
        return paused

    @staticmethod
    def resume(pids: list[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                continue

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Around the user's own measurement (a slider move): the worker is paused, so on a small machine the
        move gets every core and the background export carries on afterwards."""
        if not hasattr(signal, "SIGSTOP"):
            yield
            return
        pids = self.pause()
        try:
            yield
        finally:
            self.resume(pids)


# -- what the worker process runs -------------------------------------------------------------------
_THREADS: list[int] = []
_THREADS_LOCK = threading.Lock()


def bench(model_id: str) -> RuntimeBench:
    """This process's RuntimeBench of a zoo model (threads set once, as the dashboard sets its own)."""
    with _THREADS_LOCK:
        if not _THREADS:
            _THREADS.append(configure_threads())
    return RuntimeBench.of(process.workbench(model_id))


def runtime_result(model_id: str, recipe_json: str, runtime: str, mode: str, batch: int) -> dict:
    return bench(model_id).result(Recipe.from_json(recipe_json), runtime, MeasureSettings(mode=mode, batch=batch))


def deploy_files(model_id: str, recipe_json: str, runtime: str, batch: int) -> dict[str, bytes] | str:
    return bench(model_id).files(Recipe.from_json(recipe_json), runtime, batch=batch)


def fastest_runtime(model_id: str, batch: int) -> tuple[str, str]:
    return tables.fastest_runtime(bench(model_id), batch=batch)


def staircase(model_id: str, recipe_json: str, runtime: str, batch: int) -> pd.DataFrame:
    return tables.staircase(bench(model_id), Recipe.from_json(recipe_json), runtime, batch=batch)


def across_runtimes(model_id: str, recipe_json: str, mode: str, batch: int) -> pd.DataFrame:
    settings = MeasureSettings(mode=mode, batch=batch)
    return tables.across_runtimes(bench(model_id), Recipe.from_json(recipe_json), settings)
