"""This process's Workbench per zoo model: the one cache that outlives a task in a worker process.

A worker process (the dashboard's runtime worker, a Ray worker reused for every task it is given) keeps
one ``Workbench`` per model here, so the model is loaded, its importance sorted and its dense predictions
computed once per *process*, not once per config. It is the package's one piece of module-level state,
on purpose, and it is bounded (``MAX_MODELS``, least recently used out first).
"""

from __future__ import annotations

import threading

from compress_core.base.lru import LRU
from compress_core.bench.workbench import Workbench

MAX_MODELS = 4  # Workbenches one process keeps (each holds a model and its caches; datasets are shared)
_LOCK = threading.Lock()
_CACHE: LRU[Workbench] = LRU(MAX_MODELS)


def workbench(model_id: str) -> Workbench:
    """This process's Workbench for the zoo model ``model_id``, built on first use."""
    with _LOCK:
        wb = _CACHE.get(model_id)
        if wb is None:
            wb = Workbench(model_id)
            _CACHE.put(model_id, wb)
        return wb


def keep(wb: Workbench) -> None:
    """Make ``wb`` this process's Workbench for its model (a test's prepared Workbench)."""
    with _LOCK:
        _CACHE.put(wb.model_id, wb)


def forget() -> None:
    """Drop every kept Workbench (a test starting from a fresh process's state)."""
    with _LOCK:
        _CACHE.clear()
