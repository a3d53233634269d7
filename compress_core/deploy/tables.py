"""Tidy DataFrames over runtimes: one recipe on every runtime, a latency staircase, the fastest runtime."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from compress_core.base.recipe import MAX_SPARSITY, Recipe
from compress_core.base.records import Progress
from compress_core.base.settings import MeasureSettings
from compress_core.deploy.bench import RuntimeBench
from compress_core.deploy.runtimes import RUNTIMES, RuntimeUnsupported, available_runtimes
from compress_core.engine import measure

RUNTIME_KEYS = tuple(RUNTIMES)
STAIRCASE = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25)  # fractions of channels kept
ACROSS_COLUMNS = [
    "runtime",
    "latency_ms_p50",
    "latency_ms_iqr",
    "speedup",
    "speedup_vs_eager",
    "accuracy",
    "agreement",
    "deploy_file_bytes",
    "latency_kernels",
    "deploy_s",
    "error",
    # what a headline needs (compress_core.present.headline): the references the speed-ups are of, and the verdict
    "dense_latency_ms_p50",
    "eager_latency_ms_p50",
    "latency_noisy",
    "latency_threads",
    "latency_batch",
]


STAIRCASE_COLUMNS = [
    "runtime",
    "fraction_kept",
    "sparsity",
    "macs",
    "mac_reduction",
    "latency_ms_p50",
    "latency_ms_iqr",
    "speedup",
    "dense_latency_ms_p50",  # the runtime's dense model in the same window: what the shown speed-up is of
    "latency_noisy",
    "latency_kernels",
    "error",
]


def available() -> dict[str, str | None]:
    """Every runtime key with None (usable here) or the one-line reason it is not."""
    return available_runtimes()


# -- tables -----------------------------------------------------------------------------------------
def across_runtimes(
    rb: RuntimeBench, recipe: Recipe, settings: MeasureSettings | None = None, progress: Progress | None = None
) -> pd.DataFrame:
    """One row per registered runtime: the recipe's latency, speed-ups, accuracy and file bytes there."""
    rows = []
    for i, key in enumerate(RUNTIME_KEYS):
        if progress is not None:
            progress(i / len(RUNTIME_KEYS), f"{key}")
        r = rb.result(recipe, key, settings)
        rows.append(
            {c: r.get(c) if c != "deploy_s" else (r.get("seconds") or {}).get("deploy_s") for c in ACROSS_COLUMNS}
            | {"runtime": key}
        )
    return pd.DataFrame(rows, columns=ACROSS_COLUMNS)


def staircase(
    rb: RuntimeBench,
    recipe: Recipe,
    runtime: str,
    fractions: tuple[float, ...] = STAIRCASE,
    batch: int = 1,
    threads: int | None = None,
    budget_s: float = 0.3,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Latency on ``runtime`` against the fraction of channels kept (``recipe`` at sparsity 1 - f for each
    f): tidy rows of runtime, fraction_kept, sparsity, macs, mac_reduction, latency, speed-up over the
    runtime's dense fp32, kernels, error. Structured recipes only."""
    if recipe.prune.kind != "structured":
        raise ValueError(f"a latency staircase needs a structured recipe (channels removed); got {recipe.label()}")
    threads = threads or torch.get_num_threads()
    wb = rb.wb
    dense_macs = measure.count_macs(wb.model, tuple(wb.spec.input_shape))
    rows = []
    for i, f in enumerate(fractions):
        if not 0.0 < f <= 1.0:
            raise ValueError(f"fractions of channels kept must be in (0, 1]; got {f}")
        if progress is not None:
            progress(i / len(fractions), f"{f:.0%} of channels on {runtime}")
        r = recipe.with_prune(sparsity=min(MAX_SPARSITY, round(1.0 - f, 6)))
        row: dict[str, Any] = {"runtime": runtime, "fraction_kept": f, "sparsity": r.prune.sparsity}
        try:
            comp = wb.compress(r)
            row["macs"] = measure.count_macs(comp.float_model, tuple(wb.spec.input_shape))
            if runtime == "torch":
                pair, kernels = wb.latency_of(comp.model, comp.kernels, batch, threads, budget_s)
            else:
                dep = rb.session(r, runtime, batch, threads, comp)
                pair, kernels = rb.timings.latency_on(r.quant.int8, dep, comp, runtime, budget_s), dep.kernels
            row.update(
                latency_ms_p50=pair.ms_p50,
                latency_ms_iqr=pair.ms_iqr,
                speedup=pair.speedup,
                dense_latency_ms_p50=pair.baseline_ms_p50,
                latency_noisy=pair.noisy,
                latency_kernels=kernels,
                error=None,
            )
        except RuntimeUnsupported as exc:
            row["error"] = str(exc)
        row["mac_reduction"] = dense_macs / row["macs"] if row.get("macs") else None
        rows.append(row)
    return pd.DataFrame(rows, columns=STAIRCASE_COLUMNS)


def fastest_runtime(
    rb: RuntimeBench, batch: int = 1, threads: int | None = None, budget_s: float = 0.3
) -> tuple[str, str]:
    """(runtime key, a sentence why): the runtime whose dense fp32 runs fastest here at ``batch`` and
    ``threads``, each timed paired with eager PyTorch dense fp32 once per process."""
    threads = threads or torch.get_num_threads()
    speed: dict[str, float] = {}
    skipped = []
    for key, reason in available().items():
        if reason is not None:
            skipped.append(f"{key} not usable ({reason})")
            continue
        try:
            speed[key] = rb.timings.vs_eager(key, batch, threads, budget_s)[0]
        except RuntimeUnsupported as exc:
            skipped.append(str(exc))
    best = max(speed, key=lambda k: speed[k])
    others = ", ".join(f"{k} {v:.2f}×" for k, v in sorted(speed.items(), key=lambda kv: -kv[1]) if k != best)
    text = (
        f"{best} runs dense fp32 {speed[best]:.2f}× as fast as eager PyTorch at batch {batch}, {threads} "
        f"thread(s) on this machine" + (f" (others: {others})" if others else "")
    )
    return best, text + ("; " + "; ".join(skipped) if skipped else "")
