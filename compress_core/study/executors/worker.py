"""What a cluster worker runs: measure configs on this process's own cached Workbench.

A worker process (a Ray worker, reused for every task it is given) measures on ``bench.process``'s
Workbench of the model, so the model is loaded, its importance sorted and its dense predictions
computed once per *worker*, not once per config.

No Ray import here: ``measure_group`` is a plain function that ``ray_exec`` wraps as a remote task
(and that tests can call directly).
"""

from __future__ import annotations

import torch

from compress_core.base.recipe import Recipe
from compress_core.base.threads import configure_threads
from compress_core.bench import process
from compress_core.deploy.bench import RuntimeBench
from compress_core.deploy.runtimes.base import RuntimeUnsupported
from compress_core.study.executors.base import Settings, stamped


def measure_group(
    model_id: str, items: list[tuple[int, str]], settings: Settings, threads: int, executor: str
) -> list[tuple[int, dict | None, str]]:
    """Measure each ``(index, recipe_json)`` in order with ``threads`` torch threads (the CPUs the task
    asked for, so workers sharing a machine do not oversubscribe it); ``(index, stamped result, "")`` each,
    or ``(index, None, why)`` for a config the sweep's runtime cannot take (the others still measured)."""
    configure_threads(threads)
    rb, measure = RuntimeBench.of(process.workbench(model_id)), settings.measure(torch.get_num_threads())
    out: list[tuple[int, dict | None, str]] = []
    for index, recipe_json in items:
        try:
            result = rb.evaluate(Recipe.from_json(recipe_json), settings.runtime, measure)
        except RuntimeUnsupported as exc:
            out.append((index, None, str(exc)))
            continue
        out.append((index, stamped(result.to_dict(), executor), ""))
    return out
