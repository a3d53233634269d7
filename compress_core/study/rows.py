"""The wide table of measured Results: one row per recipe, fixed columns and dtypes, shared by the results
store (``ResultStore.frame``), sweeps (``sweep.run_sweep``) and the dashboard's CSV export."""

from __future__ import annotations

import json

import pandas as pd

from compress_core.base.recipe import Recipe
from compress_core.study.executors.base import WHERE_FIELDS

# The wide table shared by ``ResultStore.frame`` and ``sweep.run_sweep``: one row per recipe.
ID_COLUMNS = [
    "model",
    "recipe_json",
    "label",
    "kind",
    "criterion",
    "scope",
    "sparsity",
    "bits",
    "int8",
    "recovery",
    "mode",
    "runtime",  # the runtime latency and accuracy were measured on (``torch``: eager PyTorch)
]
FLOAT_COLUMNS = [
    "accuracy",
    "accuracy_oneshot",  # without the recipe's post-training recovery (None when it has none)
    "recovery_s",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "agreement",
    "dense_accuracy",
    "compression_ratio",
    "latency_ms_p50",
    "latency_ms_iqr",
    "dense_latency_ms_p50",
    "speedup",
    "speedup_spread",
    "latency_load",
]
INT_COLUMNS = [
    "eval_samples",
    "params_total",
    "params_nonzero",
    "dense_params",
    "macs",
    "dense_macs",
    "size_bytes",
    "dense_size_bytes",
    "latency_batch",
    "latency_threads",
    "dense_artifact_bytes",
    "attempts",
]
# Where a row was measured (``executors.where``); rows stored before these existed read as missing.
WHERE_COLUMNS = list(WHERE_FIELDS)
# ``forgets``: the Result's ``bench.forgets`` record as JSON text (missing in rows measured before it existed).
TEXT_COLUMNS = ["eval_set", "size_method", "latency_kernels", "simulated", "latency_note", *WHERE_COLUMNS, "forgets"]
BOOL_COLUMNS = ["int8", "latency_noisy", "cached"]
COLUMNS = [
    *ID_COLUMNS,
    "eval_set",
    "eval_samples",
    "accuracy",
    "accuracy_oneshot",
    "recovery_s",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "agreement",
    "dense_accuracy",
    "params_total",
    "params_nonzero",
    "dense_params",
    "macs",
    "dense_macs",
    "size_bytes",
    "dense_size_bytes",
    "size_method",
    "compression_ratio",
    "latency_ms_p50",
    "latency_ms_iqr",
    "latency_batch",
    "latency_threads",
    "latency_kernels",
    "dense_latency_ms_p50",
    "speedup",
    "simulated",
    "speedup_spread",
    "latency_noisy",
    "latency_load",
    "latency_note",
    "dense_artifact_bytes",
    *WHERE_COLUMNS,
    "attempts",
    "cached",
    "forgets",
]


def result_row(result: dict, recipe_json: str, mode: str, cached: bool, runtime: str = "torch") -> dict:
    """Flatten a ``Result.to_dict()`` into one row of the wide table (``COLUMNS``)."""
    recipe = Recipe.from_json(recipe_json)
    row = {
        "model": result.get("model"),
        "recipe_json": recipe_json,
        "label": recipe.label(),
        "kind": recipe.prune.kind,
        "criterion": recipe.prune.criterion,
        "scope": recipe.prune.scope,
        "sparsity": recipe.prune.sparsity,
        "bits": recipe.quant.bits,
        "int8": recipe.quant.int8,
        "recovery": recipe.recovery,
        "mode": mode,
        "runtime": runtime,
    }
    for name in FLOAT_COLUMNS + INT_COLUMNS + TEXT_COLUMNS:
        row[name] = result.get(name)
    row["simulated"] = "; ".join(result.get("simulated") or [])
    row["latency_note"] = result.get("latency_note") or ""
    row["latency_noisy"] = bool(result.get("latency_noisy"))
    row["cached"] = bool(cached)
    row["forgets"] = json.dumps(result["forgets"], sort_keys=True) if result.get("forgets") else None
    return row


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """The wide DataFrame with fixed columns and dtypes (missing measurements are NaN)."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    for name in [*FLOAT_COLUMNS, "sparsity"]:
        df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
    for name in [*INT_COLUMNS, "bits"]:
        df[name] = pd.to_numeric(df[name], errors="coerce")
        if not df[name].isna().any():
            df[name] = df[name].astype("int64")
    for name in BOOL_COLUMNS:
        df[name] = df[name].fillna(False).astype(bool)
    return df
