"""Runtime results: a recipe measured on the runtime you would ship it on (``compress_core.deploy.runtimes``).

For a Workbench and a recipe, ``runtime_result(wb, recipe, runtime, mode, batch, threads)`` exports the
compressed float model to the runtime (``torch``, ``onnxruntime``, ``openvino``, ``executorch``), with the
runtime's own int8 for an int8 recipe (calibrated on ``wb.calib()``, training images), and measures:

- accuracy **on the runtime's session**, on the same evaluation set as ``Workbench.evaluate``'s mode,
  with agreement against eager PyTorch's dense fp32 predictions;
- latency paired (``timing.paired``) against **that runtime's** dense fp32 session at the same batch and
  threads: ``speedup``; and ``speedup_vs_eager``, that speed-up times the runtime's dense speed-up over
  eager PyTorch dense fp32 (itself paired, once per process; the faster of NCHW and channels_last from
  batch 32 up, as the Workbench times it);
- ``deploy_file_bytes`` (the file(s) ``deploy_files`` returns) and ``seconds["deploy_s"]`` (export,
  int8 quantization and compilation).

``torch`` is the Workbench's own measurement (``Workbench.evaluate``) plus the size of the file the torch
adapter writes (``.pt2``, or a TorchScript ``.pt`` for FX int8). Sessions are kept per recipe (the
weights change with every slider move, so the export is per recipe; another batch or thread count
reuses it where the runtime can), latencies per structure (equal shapes and kernels share one timing).

The dashboard-facing calls (``runtime_result``, ``deploy_files``, ``staircase``, ``across_runtimes``,
``fastest_runtime``) return a runtime's one-line refusal instead of raising ``RuntimeUnsupported``.
This module never imports ``pipeline`` (the Workbench calls it), so the Workbench is typed by ``Bench``.
"""

from __future__ import annotations

from compress_core.deploy.results import deploy_files, evaluate_on, peek_runtime, runtime_result, save_deploy
from compress_core.deploy.sessions import RUNTIME_KEYS, STAIRCASE, Bench, available, session
from compress_core.deploy.tables import across_runtimes, fastest_runtime, staircase

__all__ = [
    "RUNTIME_KEYS",
    "STAIRCASE",
    "Bench",
    "across_runtimes",
    "available",
    "deploy_files",
    "evaluate_on",
    "fastest_runtime",
    "peek_runtime",
    "runtime_result",
    "save_deploy",
    "session",
    "staircase",
]
