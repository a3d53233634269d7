"""``compress_core.deploy``: a recipe measured on a runtime's session (accuracy there, latency paired with
that runtime's dense fp32), sessions reused per recipe, refusals as one line, the deployable files, and the
staircase / across-runtimes tables. LeNet-5, small timing budgets."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compress_core import deploy as deployment
from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.deploy import RuntimeBench
from compress_core.deploy.runtimes import RuntimeUnsupported, get_runtime

BUDGET = 0.03
STRUCT = Recipe(PruneSpec("structured", "l1", "global", 0.5))
INT8 = Recipe(PruneSpec("structured", "l1", "global", 0.5), QuantSpec(bits=8, int8=True))
ONE = MeasureSettings(threads=1, budget_s=BUDGET)  # one thread, a small timing budget


@pytest.fixture(scope="module", autouse=True)
def _needs_onnxruntime() -> None:
    """Every test here measures on ONNX Runtime (with the shared LeNet-5 ``wb``)."""
    reason = get_runtime("onnxruntime").available()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def rb(wb) -> RuntimeBench:
    return RuntimeBench.of(wb)


def test_a_workbench_has_one_runtime_bench(wb, rb):
    assert RuntimeBench.of(wb) is rb and rb.wb is wb


def test_a_result_on_onnxruntime_is_measured_there_and_cached(wb, rb):
    r = rb.result(STRUCT, "onnxruntime", ONE)
    assert r["error"] is None and r["runtime"] == "onnxruntime"
    assert r["latency_kernels"] == "onnxruntime-cpu fp32" and r["deploy_file_bytes"] > 0
    torch_result = rb.evaluate(STRUCT, "torch", ONE)
    assert torch_result.runtime == "torch" and torch_result.deploy_file_bytes is None  # the default is unchanged
    assert abs(r["accuracy"] - torch_result.accuracy) <= 0.002 and r["agreement"] >= 0.99 * torch_result.agreement
    assert r["speedup"] > 0 and r["speedup_vs_eager"] > 0 and math.isfinite(r["dense_latency_ms_p50"])
    assert torch_result is wb.peek(STRUCT, ONE), "eager PyTorch through the bench is the Workbench's own result"
    assert rb.result(STRUCT, "onnxruntime", MeasureSettings(threads=1)) is r
    assert rb.peek(STRUCT, "onnxruntime", MeasureSettings(threads=1)) is r
    assert rb.peek(STRUCT, "onnxruntime", MeasureSettings(threads=2)) is None


def test_int8_recipes_use_the_runtimes_own_int8(rb):
    fp32 = rb.result(STRUCT, "onnxruntime", ONE)
    q = rb.evaluate(INT8, "onnxruntime", ONE)
    assert q.runtime == "onnxruntime" and "int8" in q.latency_kernels
    assert q.deploy_file_bytes is not None and q.deploy_file_bytes < fp32["deploy_file_bytes"]
    assert any("calibration" in n or "MinMax" in n for n in q.simulated)


def test_sessions_are_kept_per_recipe_and_reconfigured_for_other_threads(rb, monkeypatch):
    rt = get_runtime("onnxruntime")
    calls = []
    real = rt.deploy
    monkeypatch.setattr(rt, "deploy", lambda *a, **k: calls.append(1) or real(*a, **k))
    recipe = STRUCT.with_prune(sparsity=0.3)
    one = rb.session(recipe, "onnxruntime", 1, 1)
    assert rb.session(recipe, "onnxruntime", 1, 1) is one
    two = rb.session(recipe, "onnxruntime", 4, 2)
    assert (two.batch, two.threads) == (4, 2) and len(calls) == 1  # the same file, a new session
    rb.session(STRUCT.with_prune(sparsity=0.4), "onnxruntime", 1, 1)
    assert len(calls) == 2  # new weights: a new export


def test_a_runtime_that_refuses_gives_its_one_line_reason(rb, monkeypatch):
    rt = get_runtime("onnxruntime")
    refusal = RuntimeUnsupported("onnxruntime cannot take this model: ONNX export failed (Boom: no)")
    monkeypatch.setattr(rt, "deploy", lambda *a, **k: (_ for _ in ()).throw(refusal))
    recipe = STRUCT.with_prune(sparsity=0.2)
    assert rb.result(recipe, "onnxruntime", MeasureSettings(threads=1)) == {
        "runtime": "onnxruntime",
        "error": str(refusal),
    }
    assert rb.files(recipe, "onnxruntime") == str(refusal)
    with pytest.raises(RuntimeUnsupported):
        rb.evaluate(recipe, "onnxruntime", MeasureSettings(threads=1))
    monkeypatch.setattr(rt, "available", lambda: "onnxruntime is not installed: pip install onnxruntime")
    row = rb.result(recipe.with_prune(sparsity=0.1), "onnxruntime", MeasureSettings(threads=1))
    assert row["error"].startswith("onnxruntime is not usable here")


def test_deploy_files_are_named_after_the_model_and_recipe(wb, rb):
    files = rb.files(STRUCT, "onnxruntime")
    assert isinstance(files, dict) and list(files) == ["lenet5-mnist-structured-l1-global-50.onnx"]
    loaded = get_runtime("onnxruntime")
    assert (
        len(files["lenet5-mnist-structured-l1-global-50.onnx"])
        == loaded.deploy(wb.compressed(STRUCT).float_model, (1, 28, 28)).file_bytes
    )


def test_the_staircase_times_each_fraction_of_channels(rb):
    df = deployment.staircase(rb, STRUCT, "onnxruntime", (1.0, 0.5, 0.25), threads=1, budget_s=BUDGET)
    assert list(df["fraction_kept"]) == [1.0, 0.5, 0.25] and df["error"].isna().all()
    assert df.loc[0, "speedup"] == 1.0 and df.loc[0, "mac_reduction"] == 1.0
    assert df["macs"].is_monotonic_decreasing and (df["latency_ms_p50"] > 0).all()
    with pytest.raises(ValueError, match="structured recipe"):
        deployment.staircase(rb, Recipe(PruneSpec("unstructured", sparsity=0.5)), "onnxruntime")


def test_across_runtimes_has_a_row_per_runtime_and_says_why_one_is_missing(rb, monkeypatch):
    for key in ("openvino", "executorch"):  # keep the test fast: two runtimes measured, two refused
        monkeypatch.setattr(get_runtime(key), "available", lambda key=key: f"{key} is not installed (test)")
    df = deployment.across_runtimes(rb, STRUCT, ONE)
    assert list(df["runtime"]) == list(deployment.RUNTIME_KEYS) and list(df.columns) == deployment.tables.ACROSS_COLUMNS
    rows = df.set_index("runtime")
    assert pd.isna(rows.loc["onnxruntime", "error"]) and rows.loc["onnxruntime", "latency_ms_p50"] > 0
    assert rows.loc["torch", "deploy_file_bytes"] > 0
    assert "not installed (test)" in rows.loc["openvino", "error"]
    key, why = deployment.fastest_runtime(rb, 1, 1, budget_s=BUDGET)
    assert key in ("torch", "onnxruntime") and why.startswith(key) and "executorch not usable" in why
