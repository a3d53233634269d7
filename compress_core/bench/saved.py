"""Measure a saved artefact file the way Explore measures a recipe.

``evaluate_artifact(path)`` loads a ``.psz`` file (``compress_core.files.artifact``) and runs the loaded
model through a ``Workbench`` whose size is the file's size on disk: accuracy against the
dense model, parameters, MACs and latency, as one ``records.Result``.
"""

from __future__ import annotations

import os
from dataclasses import replace

from compress_core.base.records import SIZE_ARTIFACT, Compressed, Result
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.files.artifact import load_artifact


class _FileWorkbench(Workbench):
    """A Workbench whose size is the artefact file's size on disk."""

    def __init__(self, model_id: str, file_size_bytes: int) -> None:
        super().__init__(model_id)
        self.file_size_bytes = file_size_bytes

    def size_of(self, comp: Compressed) -> tuple[int, str]:
        return self.file_size_bytes, SIZE_ARTIFACT


def evaluate_artifact(
    path: str | os.PathLike,
    mode: str = "quick",
    latency_batch: int = 1,
    latency_budget_s: float = 1.0,
    measure_latency: bool = True,
) -> Result:
    """Load the file and measure the loaded model (accuracy vs the dense model, size on disk, latency)."""
    loaded = load_artifact(path)
    wb = _FileWorkbench(loaded.model_id, os.path.getsize(path))
    settings = MeasureSettings(mode, latency_batch, None, latency_budget_s, measure_latency)
    result = wb.evaluate(loaded.recipe, settings, compressed=loaded.to_compressed())
    if not loaded.meta.get("float_weights", True) and isinstance(loaded.meta.get("params_nonzero"), int):
        result = replace(
            result,
            params_nonzero=loaded.meta["params_nonzero"],
            simulated=[*result.simulated, "non-zero parameter count recorded when the file was saved"],
        )
    return result
