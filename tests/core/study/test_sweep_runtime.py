"""A sweep measured on a deployment runtime: its rows say so, and they are stored apart from eager
PyTorch's rows for the same recipes (neither stands in for the other)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.study.executors import Settings
from compress_core.study.store import ResultStore
from compress_core.study.sweep import run_sweep

pytest.importorskip("onnxruntime")
RECIPES = [Recipe(), Recipe(prune=PruneSpec(kind="structured", scope="layer", sparsity=0.5))]


def test_rows_on_onnx_runtime_are_measured_there_and_kept_apart_from_eager_rows(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        eager = run_sweep("lenet5-mnist", RECIPES, latency_budget_s=0.02, store=store)
        ort = run_sweep("lenet5-mnist", RECIPES, latency_budget_s=0.02, store=store, runtime="onnxruntime")
        assert not ort["cached"].any(), "eager rows must not stand in for runtime rows"
        assert list(ort["mode"]) == ["quick"] * 2 and list(eager["mode"]) == ["quick"] * 2
        assert list(ort["runtime"]) == ["onnxruntime"] * 2 and list(eager["runtime"]) == ["torch"] * 2
        assert all("onnxruntime" in k for k in ort["latency_kernels"])
        assert not any("onnxruntime" in k for k in eager["latency_kernels"])
        assert list(ort["accuracy"]) == pytest.approx(list(eager["accuracy"]), abs=0.002)  # fp32 on both
        stored = store.get("lenet5-mnist", RECIPES[1].to_json(), "quick", 1, runtime="onnxruntime")
        assert stored["runtime"] == "onnxruntime" and stored["deploy_file_bytes"] > 0
        assert store.get("lenet5-mnist", RECIPES[1].to_json(), "quick", 1)["runtime"] == "torch"
        again = run_sweep("lenet5-mnist", RECIPES, latency_budget_s=0.02, store=store, runtime="onnxruntime")
        assert again["cached"].all()  # resumable like any sweep


def test_settings_refuse_an_unknown_runtime_and_measure_in_their_mode():
    with pytest.raises(ValueError, match="unknown runtime 'tpu'"):
        Settings(runtime="tpu")
    assert Settings("full", 4, 0.5, "openvino").measure(2) == MeasureSettings("full", 4, 2, 0.5, latency=True)


def test_cli_sweep_takes_the_runtime(tmp_path):
    out = tmp_path / "s.csv"
    cmd = [
        sys.executable,
        "-m",
        "compress_core",
        "sweep",
        "--model",
        "lenet5-mnist",
        "--sparsities",
        "0",
        "--bits-list",
        "32",
        "--latency-budget",
        "0.02",
        "--runtime",
        "onnxruntime",
        "--no-store",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = pd.read_csv(out).iloc[0]
    assert row["mode"] == "quick" and row["runtime"] == "onnxruntime" and "onnxruntime" in row["latency_kernels"]
    bad = subprocess.run([*cmd[:-2], "--runtime", "tpu"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice: 'tpu'" in bad.stderr and "Traceback" not in bad.stderr
