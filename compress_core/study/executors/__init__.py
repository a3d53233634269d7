"""Executors: where a sweep's configs are measured (``base.Executor``), one registered class per kind.

- ``inprocess`` (the default): this process, one shared Workbench, one config after another.
- ``ray``: Ray tasks on a local Ray (``"local"``) or an existing cluster (``"host:6379"``,
  ``"ray://host:10001"``, ``"auto"``); Ray is an optional extra (``pip install -e '.[ray]'``).

``make_executor(spec)`` turns what a user types into an executor: None or ``"inprocess"`` -> in-process,
anything else is a Ray address. ``sweep.run_sweep`` and ``sweep.measure_recipes`` take either.
"""

from __future__ import annotations

from compress_core.study.executors.base import (
    EXECUTORS,
    WHERE_FIELDS,
    Executor,
    Outcome,
    Settings,
    register,
    stamped,
    where,
)
from compress_core.study.executors.local import InProcessExecutor
from compress_core.study.executors.ray_exec import ADDRESS_ENV, INSTALL_HINT, RayExecutor, ray_address, ray_missing

__all__ = [
    "ADDRESS_ENV",
    "EXECUTORS",
    "INSTALL_HINT",
    "WHERE_FIELDS",
    "Executor",
    "InProcessExecutor",
    "Outcome",
    "RayExecutor",
    "Settings",
    "make_executor",
    "ray_address",
    "ray_missing",
    "register",
    "stamped",
    "where",
]


def make_executor(spec: str | Executor | None = None, cpus_per_config: int = 1, **ray_options: object) -> Executor:
    """An executor from a spec: an Executor is returned as it is; None or ``"inprocess"`` is this
    process; any other string is a Ray address (``local``, ``auto``, ``host:port``, ``ray://host:port``)."""
    if isinstance(spec, Executor):
        return spec
    if spec is None or spec == InProcessExecutor.key:
        return InProcessExecutor()
    if not isinstance(spec, str):
        raise ValueError(f"an executor is 'inprocess' or a Ray address; got {spec!r}")
    return RayExecutor(spec, cpus_per_config=cpus_per_config, **ray_options)  # type: ignore[arg-type]
