"""Ray execution: a sweep's configs as Ray tasks on a local Ray or an existing cluster.

``RayExecutor(address)`` connects on first use: ``"local"`` starts a private local Ray (``num_cpus``
of this machine), ``"auto"`` joins a Ray already running on this machine (``ray start --head``) or
starts one, and ``"host:6379"`` / ``"ray://host:10001"`` join an existing cluster. It shuts Ray down
in ``close()`` only if it started the connection.

Scheduling is Ray's: every config is one task with its own resource request (``cpus_per_config``;
fine-tuning configs ask for ``finetune_cpus``, by default twice as many, but never more than half the
largest node so that two configs still share every node). Configs that share one fine-tune (the same
pruning + fine-tuning + recovery at several bit-widths) go in one task, so the fine-tune runs once on
one worker rather than once per bit-width on whichever worker gets each. Each task sets torch's
threads to its CPU request and measures on its worker's cached Workbench (``worker.measure_group``);
its result dicts come back to the driver as each task finishes.

Faults. A task whose worker (or node) dies is submitted again, up to ``max_attempts`` in all; after
that its configs come back as failed ``Outcome``s. A recipe that raises on the worker raises on the
driver, as in-process; a config the sweep's runtime cannot take (``RuntimeUnsupported``) comes back as a
failed ``Outcome`` with the runtime's one-line reason, in both. Stopping (``should_stop``, Ctrl-C,
closing the generator) cancels every task that has not come back.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from compress_core.base.recipe import Recipe
from compress_core.study.executors.base import Executor, Outcome, Settings, ShouldStop, register
from compress_core.study.executors.worker import measure_group

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e '.[ray]' (or pip install -r requirements-ray.txt)"
ADDRESS_ENV = "PRUNESCOPE_RAY_ADDRESS"  # the dashboard offers "Run on Ray" when this names a cluster (or local)
WAIT_S = 0.5  # longest wait for a result before should_stop is checked again


def ray_missing() -> str | None:
    """Why the Ray executor cannot run here (Ray not installed), or None."""
    if importlib.util.find_spec("ray") is None:
        return f"Ray is not installed; install the optional extra: {INSTALL_HINT}"
    return None


def ray_address() -> str | None:
    """The Ray address the dashboard should offer (``PRUNESCOPE_RAY_ADDRESS``), or None when unset."""
    return os.environ.get(ADDRESS_ENV, "").strip() or None


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return value


@dataclass
class _Task:
    items: list[tuple[int, str]]  # (index into the recipe list, recipe JSON)
    cpus: int
    finetune: bool = False
    attempt: int = 1


@register
class RayExecutor(Executor):
    """Measures on Ray workers; the driver (``sweep.run_sweep``) alone writes the results store."""

    key = "ray"
    label = "Ray"  # an instance says where: "Ray (local)", "Ray (host:6379)"
    description = "Ray tasks on a local Ray or an existing cluster; the driver alone writes the results store."
    needs = "ray"

    def __init__(
        self,
        address: str = "local",
        cpus_per_config: int = 1,
        finetune_cpus: int | None = None,
        max_attempts: int = 2,
        num_cpus: int | None = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(address, str) or not address.strip():
            raise ValueError(f"a Ray address is 'local', 'auto', host:port or ray://host:port; got {address!r}")
        self.address = address.strip()
        self.cpus_per_config = _positive("cpus per config", cpus_per_config)
        self.finetune_cpus = None if finetune_cpus is None else _positive("fine-tune cpus", finetune_cpus)
        self.max_attempts = _positive("max_attempts", max_attempts)
        self.num_cpus = None if num_cpus is None else _positive("num_cpus", num_cpus)
        self.runtime_env = runtime_env
        self.label = f"Ray ({self.address})"
        self._started = False
        self._ray: Any = None

    # -- connection ---------------------------------------------------------------------------
    def connect(self) -> Any:
        """The ``ray`` module, connected (an existing connection of this process is reused)."""
        if self._ray is not None:
            return self._ray
        if (missing := ray_missing()) is not None:
            raise ValueError(missing)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "runtime_env": self.runtime_env}
            if self.address == "local":
                kwargs.update(address="local", num_cpus=self.num_cpus, include_dashboard=False)
            elif self.address != "auto":
                kwargs["address"] = self.address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ValueError(f"cannot reach the Ray cluster at {self.address!r}: {exc}") from None
            self._started = True
        self._ray = ray
        return ray

    def close(self) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._started, self._ray = False, None

    def largest_node_cpus(self) -> int:
        ray = self.connect()
        cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
        return max(cpus, default=0)

    def cpus_for(self, recipe: Recipe, largest: int) -> int:
        """The CPUs a config's task asks for (and the torch threads it runs with)."""
        if recipe.finetune is None:
            return self.cpus_per_config
        if self.finetune_cpus is not None:
            return self.finetune_cpus
        return max(self.cpus_per_config, min(2 * self.cpus_per_config, largest // 2))

    # -- tasks --------------------------------------------------------------------------------
    def tasks(self, recipes: Sequence[Recipe], largest: int) -> list[_Task]:
        """One task per config, except that configs sharing one fine-tune share one task; fine-tune
        tasks first (the longest work starts first), then the rest in the given order."""
        groups: dict[object, _Task] = {}
        for index, recipe in enumerate(recipes):
            key = (recipe.prune, recipe.finetune, recipe.recovery) if recipe.finetune is not None else index
            task = groups.setdefault(key, _Task([], self.cpus_for(recipe, largest), recipe.finetune is not None))
            task.items.append((index, recipe.to_json()))
        for task in groups.values():
            if task.cpus > largest:
                raise ValueError(
                    f"a config asks for {task.cpus} CPUs but the largest Ray node has {largest}: "
                    f"lower {'--ray-finetune-cpus' if task.finetune else '--ray-cpus-per-config'}"
                )
        return sorted(groups.values(), key=lambda t: (not t.finetune, -len(t.items)))

    def measure(
        self, model_id: str, recipes: Sequence[Recipe], settings: Settings, should_stop: ShouldStop | None = None
    ) -> Generator[Outcome, None, None]:
        ray = self.connect()
        remote = ray.remote(measure_group)
        running: dict[Any, _Task] = {}

        def submit(task: _Task) -> None:
            ref = remote.options(num_cpus=task.cpus, max_retries=0, name=f"prunescope-{model_id}").remote(
                model_id, task.items, settings, task.cpus, self.key
            )
            running[ref] = task

        for task in self.tasks(recipes, self.largest_node_cpus()):
            submit(task)
        try:
            while running:
                if should_stop is not None and should_stop():
                    return
                ready, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
                for ref in ready:
                    task = running.pop(ref)
                    try:
                        done = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the recipe itself failed: as in-process
                        raise (exc.cause if isinstance(exc.cause, Exception) else exc) from None
                    except ray.exceptions.RayError as exc:  # the worker or its node died
                        yield from self._lost(task, exc, submit)
                        continue
                    for index, result, error in done:
                        stamped_result = None if result is None else {**result, "attempts": task.attempt}
                        yield Outcome(index, stamped_result, error=error, attempts=task.attempt)
        finally:
            for ref in running:
                ray.cancel(ref)

    def _lost(self, task: _Task, exc: BaseException, submit: Any) -> Generator[Outcome, None, None]:
        """A task lost to a dying worker: submit it again, or report its configs failed."""
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}"
        if task.attempt < self.max_attempts:
            log.warning("a Ray worker died (%s); retrying %d config(s)", reason, len(task.items))
            submit(_Task(task.items, task.cpus, task.finetune, task.attempt + 1))
            return
        for index, _ in task.items:
            yield Outcome(index, None, f"lost {task.attempt} time(s) to a dying worker ({reason})", task.attempt)
