"""Runtime results: a recipe measured on the runtime you would ship it on (``compress_core.deploy.runtimes``).

``RuntimeBench.of(workbench)`` owns a Workbench's deployed sessions, runtime timings and runtime results
(``deploy.bench``): ``evaluate`` (eager PyTorch is the Workbench's own measurement), ``on_runtime``,
the dashboard's cached ``result`` and ``peek``, and the deployable ``files``. ``tables`` builds the
staircase / across-runtimes tables and finds the fastest runtime; ``worker`` runs all of it in a
separate process for the dashboard.

The dashboard-facing calls (``RuntimeBench.result``, ``RuntimeBench.files``, ``staircase``,
``across_runtimes``, ``fastest_runtime``) return a runtime's one-line refusal instead of raising
``RuntimeUnsupported``.
"""

from __future__ import annotations

from compress_core.deploy.bench import RuntimeBench
from compress_core.deploy.tables import RUNTIME_KEYS, STAIRCASE, across_runtimes, available, fastest_runtime, staircase

__all__ = ["RUNTIME_KEYS", "STAIRCASE", "RuntimeBench", "across_runtimes", "available", "fastest_runtime", "staircase"]
