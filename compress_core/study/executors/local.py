"""In-process execution: every config measured here, one after another, on one shared Workbench.

This is the sweep as it always ran: the model is loaded once (only if some config is measured at
all), importance is sorted once per criterion, dense predictions are computed once per eval set and
latency once per structure, all by the one Workbench.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

from compress_core.base.recipe import Recipe
from compress_core.bench.workbench import Workbench
from compress_core.deploy.bench import RuntimeBench
from compress_core.deploy.runtimes.base import RuntimeUnsupported
from compress_core.study.executors.base import Executor, Outcome, Settings, ShouldStop, register, stamped


@register
class InProcessExecutor(Executor):
    """Measures in this process on ``workbench`` (or on one built lazily with ``make_workbench``)."""

    key = "inprocess"
    label = "this process"
    description = "Every config in this process, one after another, on one shared Workbench."

    def __init__(
        self, workbench: Workbench | None = None, make_workbench: Callable[[str], Workbench] = Workbench
    ) -> None:
        self.workbench = workbench
        self.make_workbench = make_workbench

    def bench(self, model_id: str) -> Workbench:
        if self.workbench is None or self.workbench.model_id != model_id:
            self.workbench = self.make_workbench(model_id)
        return self.workbench

    def measure(
        self, model_id: str, recipes: Sequence[Recipe], settings: Settings, should_stop: ShouldStop | None = None
    ) -> Generator[Outcome, None, None]:
        for index, recipe in enumerate(recipes):
            if should_stop is not None and should_stop():
                return
            try:
                result = RuntimeBench.of(self.bench(model_id)).evaluate(recipe, settings.runtime, settings.measure())
            except RuntimeUnsupported as exc:  # this runtime cannot take this config: a failed row, not a dead sweep
                yield Outcome(index, None, error=str(exc))
                continue
            yield Outcome(index, stamped(result.to_dict(), self.key))
