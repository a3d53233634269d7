"""Runtime measurements by model id and recipe JSON, for a worker process (the dashboard's).

The dashboard measures on ONNX Runtime, OpenVINO and ExecuTorch in a separate process rather than a
thread of its server: exporting a model parses Python source (``torch.export``, ``torch.onnx``), and
CPython 3.11 can fail with "AST constructor recursion depth mismatch" when two threads build ASTs
at once (the other being Streamlit compiling a page); a process also keeps the export's CPU work
from holding the server's GIL. Every function here takes plain data and returns plain data
(dicts, DataFrames, bytes), so it crosses a process boundary; each worker keeps one ``Workbench``
per model, so dense sessions, eager baselines and results are computed once per worker.
"""

from __future__ import annotations

import threading

import pandas as pd

from compress_core import deploy as deployment
from compress_core.base.lru import LRU
from compress_core.base.recipe import Recipe
from compress_core.base.threads import configure_threads
from compress_core.bench.workbench import Workbench

_LOCK = threading.Lock()
_BENCHES: LRU[Workbench] = LRU(4)
_THREADS: list[int] = []


def bench(model_id: str) -> Workbench:
    """This process's Workbench of a zoo model (threads set once, as the dashboard sets its own)."""
    with _LOCK:
        if not _THREADS:
            _THREADS.append(configure_threads())
        wb = _BENCHES.get(model_id)
        if wb is None:
            wb = Workbench(model_id)
            _BENCHES.put(model_id, wb)
        return wb


def runtime_result(model_id: str, recipe_json: str, runtime: str, mode: str, batch: int) -> dict:
    return deployment.runtime_result(bench(model_id), Recipe.from_json(recipe_json), runtime, mode=mode, batch=batch)


def deploy_files(model_id: str, recipe_json: str, runtime: str, batch: int) -> dict[str, bytes] | str:
    return deployment.deploy_files(bench(model_id), Recipe.from_json(recipe_json), runtime, batch=batch)


def fastest_runtime(model_id: str, batch: int) -> tuple[str, str]:
    return deployment.fastest_runtime(bench(model_id), batch=batch)


def staircase(model_id: str, recipe_json: str, runtime: str, batch: int) -> pd.DataFrame:
    return deployment.staircase(bench(model_id), Recipe.from_json(recipe_json), runtime, batch=batch)


def across_runtimes(model_id: str, recipe_json: str, mode: str, batch: int) -> pd.DataFrame:
    return deployment.across_runtimes(bench(model_id), Recipe.from_json(recipe_json), mode=mode, batch=batch)
