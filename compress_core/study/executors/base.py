"""The executor interface: where a sweep's configs are measured, and the record of where each one ran.

An ``Executor`` takes a model id, a list of recipes and the measurement settings, and yields one
``Outcome`` per recipe *as it finishes* (in any order): the ``Result.to_dict()`` of that recipe,
stamped with ``where()`` it was measured (host, CPU model, executor; ``latency_threads`` is already in
every Result) and on which attempt, or the one-line reason it failed. Executors never write the
results store: the driver (``sweep.run_sweep``) alone does, one committed row per finished config.

Errors. A recipe that raises (a ``ValueError`` from a stage, a missing data file) raises on the driver
exactly as it would in-process. A *worker* that dies mid-config is an infrastructure fault, not the
recipe's: that config alone is measured again, up to ``max_attempts`` in all, and then reported as an
``Outcome`` with ``result=None`` and its ``error``.

``EXECUTORS`` (a ``base.registry.Registry`` of classes, since executors take arguments) holds every class
decorated with ``@register``; each carries its vocabulary (``key``, ``label``, ``description``, ``needs``:
the optional package it runs on).

Latency stays honest across machines because every Result's speed-up is timed *paired* with a dense
baseline in the same process (``compress_core.base.timing``): a row's speed-up never divides one host's
milliseconds by another host's.
"""

from __future__ import annotations

import math
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import cache

from compress_core.base.recipe import Recipe
from compress_core.base.records import check_eval_mode
from compress_core.base.registry import Registry
from compress_core.base.settings import MeasureSettings

ShouldStop = Callable[[], bool]

# The fields ``where`` adds to a Result dict; together with ``latency_threads`` they say where a row ran.
WHERE_FIELDS = ("host", "cpu_model", "executor")


@dataclass(frozen=True)
class Settings:
    """How every config of one sweep is measured (the store key's mode and batch, and the timing budget)."""

    mode: str = "quick"
    latency_batch: int = 1
    latency_budget_s: float = 0.3
    runtime: str = "torch"  # the deployment runtime latency (and accuracy) is measured on

    def __post_init__(self) -> None:
        check_eval_mode(self.mode)
        from compress_core.deploy.runtimes import RUNTIMES

        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        batch = self.latency_batch
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"latency_batch must be a positive integer; got {batch!r}")
        budget = self.latency_budget_s
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
            raise ValueError(f"latency_budget_s must be a positive number of seconds; got {budget!r}")

    def measure(self, threads: int | None = None) -> MeasureSettings:
        """The settings each config is measured with (``threads``: this process's torch threads when None)."""
        return MeasureSettings(self.mode, self.latency_batch, threads, self.latency_budget_s)


@dataclass(frozen=True)
class Outcome:
    """One finished config: ``result`` (a Result dict with ``WHERE_FIELDS`` and ``attempts``), or None
    and ``error`` when every attempt was lost to a dying worker."""

    index: int  # position in the recipe list handed to ``Executor.measure``
    result: dict | None
    error: str = ""
    attempts: int = 1


@cache
def cpu_model() -> str:
    """This machine's CPU model name (``/proc/cpuinfo``; the platform's word elsewhere)."""
    from compress_core.base.machine import environment

    return environment()["CPU"]


def where(executor: str) -> dict[str, str]:
    """The ``WHERE_FIELDS`` of a measurement taken in this process."""
    return {"host": socket.gethostname(), "cpu_model": cpu_model(), "executor": executor}


def stamped(result: dict, executor: str, attempts: int = 1) -> dict:
    """``result`` with where it was measured and on which attempt."""
    return {**result, **where(executor), "attempts": attempts}


class Executor(ABC):
    """Measures recipes somewhere: in this process, or on the workers of a cluster."""

    key: str = ""
    label: str = ""  # what the UI and the CLI call it (an instance may name where it runs)
    description: str = ""
    needs: str | None = None  # the optional package it runs on

    @abstractmethod
    def measure(
        self, model_id: str, recipes: Sequence[Recipe], settings: Settings, should_stop: ShouldStop | None = None
    ) -> Generator[Outcome, None, None]:
        """Yield one Outcome per recipe as it finishes; stop submitting work once ``should_stop()`` is
        True (the generator then ends after what is already running, or at once in-process)."""

    def close(self) -> None:  # noqa: B027  (optional: executors that hold nothing need not override it)
        """Release what the executor started (a local cluster, a connection)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


EXECUTORS: Registry[type[Executor]] = Registry("executor", instances=False)
register = EXECUTORS.register  # class decorator: the class itself under its key (make_executor builds one)
