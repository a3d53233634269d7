"""What a cluster worker runs: measure configs on this process's own cached Workbench.

A worker process (a Ray worker, reused for every task it is given) keeps one ``Workbench`` per model
in ``_BENCHES``, so the model is loaded, its importance sorted and its dense predictions computed once
per *worker*, not once per config. This per-process cache is the one module-level state of the
package, on purpose: it is the task state that outlives a task. It is bounded (``MAX_MODELS``).

No Ray import here: ``measure_group`` is a plain function that ``ray_exec`` wraps as a remote task
(and that tests can call directly).
"""

from __future__ import annotations

import torch

from compress_core.base.lru import LRU
from compress_core.base.recipe import Recipe
from compress_core.base.threads import configure_threads
from compress_core.bench.workbench import Workbench
from compress_core.deploy.bench import RuntimeBench
from compress_core.deploy.runtimes.base import RuntimeUnsupported
from compress_core.study.executors.base import Settings, stamped

MAX_MODELS = 2  # Workbenches one worker process keeps (each holds a model, its caches and datasets)
_BENCHES: LRU[Workbench] = LRU(MAX_MODELS)


def bench(model_id: str) -> Workbench:
    """This process's Workbench for ``model_id`` (built on first use)."""
    wb = _BENCHES.get(model_id)
    if wb is None:
        wb = Workbench(model_id)
        _BENCHES.put(model_id, wb)
    return wb


def measure_group(
    model_id: str, items: list[tuple[int, str]], settings: Settings, threads: int, executor: str
) -> list[tuple[int, dict | None, str]]:
    """Measure each ``(index, recipe_json)`` in order with ``threads`` torch threads (the CPUs the task
    asked for, so workers sharing a machine do not oversubscribe it); ``(index, stamped result, "")`` each,
    or ``(index, None, why)`` for a config the sweep's runtime cannot take (the others still measured)."""
    configure_threads(threads)
    rb, measure = RuntimeBench.of(bench(model_id)), settings.measure(torch.get_num_threads())
    out: list[tuple[int, dict | None, str]] = []
    for index, recipe_json in items:
        try:
            result = rb.evaluate(Recipe.from_json(recipe_json), settings.runtime, measure)
        except RuntimeUnsupported as exc:
            out.append((index, None, str(exc)))
            continue
        out.append((index, stamped(result.to_dict(), executor), ""))
    return out
