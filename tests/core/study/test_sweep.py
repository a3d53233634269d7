"""Sweeps: the grid, run_sweep's rows, resuming from the store (also after SIGKILL), and the Pareto front."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.bench.workbench import Workbench
from compress_core.study import sweep as sweep_mod
from compress_core.study.store import COLUMNS, ResultStore
from compress_core.study.sweep import (
    FRONTS,
    at_chance,
    grid,
    mark_fronts,
    mark_pareto,
    pareto_front,
    run_sweep,
    shared_latency_ms,
    size_vs_dense,
)
from tests.conftest import ROOT

MODEL = "lenet5-mnist"
BUDGET_S = 0.005  # latency budget: tiny, the values are not under test here


def _counting(wb: Workbench, monkeypatch) -> list[Recipe]:
    """Record every Workbench.evaluate call on ``wb`` (a spy; the real method still runs)."""
    calls: list[Recipe] = []
    real = Workbench.evaluate

    def spy(self, recipe, *args, **kwargs):
        calls.append(recipe)
        return real(self, recipe, *args, **kwargs)

    monkeypatch.setattr(Workbench, "evaluate", spy)
    return calls


# -- grid ------------------------------------------------------------------------------------
def test_grid_is_the_deduplicated_product():
    recipes = grid(["none", "unstructured"], [0.0, 0.5], [32, 8])
    labels = [r.label() for r in recipes]
    assert labels == [
        "dense fp32",
        "8-bit symm per-channel",
        "unstructured l1 global 50%",
        "unstructured l1 global 50% + 8-bit symm per-channel",
    ]
    assert len(set(recipes)) == len(recipes)


def test_grid_collapses_unpruned_points_to_the_canonical_dense_recipe():
    recipes = grid(["unstructured", "none"], [0, 0.25], [32], criterion="l2", scope="layer")
    assert recipes[0] == Recipe()  # sparsity 0 with a pruning kind is dense, whatever the criterion
    assert recipes[1].prune == PruneSpec(kind="unstructured", criterion="l2", scope="layer", sparsity=0.25)
    assert len(recipes) == 2


def test_grid_int8_adds_a_kernel_variant_of_each_8_bit_point():
    recipes = grid(["unstructured"], [0, 0.5], [32, 8, 4], int8=True)
    int8 = [r for r in recipes if r.quant.int8]
    assert len(recipes) == 8 and len(int8) == 2
    assert all(r.quant == QuantSpec(bits=8, int8=True) for r in int8)
    assert recipes[recipes.index(int8[0]) - 1] == int8[0].with_quant(int8=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kinds": ["pruned"]}, "prune kind must be one of"),
        ({"sparsities": [50]}, "sparsity must be between 0 and 0.99"),
        ({"bits": [5]}, "bits must be one of"),
        ({"criterion": "magic"}, "criterion must be one of"),
        ({"scope": "model"}, "scope must be one of"),
        ({"bits": []}, "non-empty list of bits"),
    ],
)
def test_grid_rejects_bad_values_with_the_recipe_messages(kwargs, message):
    args = {"kinds": ["unstructured"], "sparsities": [0.5], "bits": [32], **kwargs}
    with pytest.raises(ValueError, match=message):
        grid(**args)


# -- run_sweep -------------------------------------------------------------------------------
def test_run_sweep_returns_one_measured_row_per_recipe(wb):
    recipes = grid(["unstructured"], [0, 0.5], [32, 8])
    seen = []
    df = run_sweep(
        MODEL,
        recipes,
        latency_budget_s=BUDGET_S,
        workbench=wb,
        on_result=lambda i, n, row: seen.append((i, n, row["label"])),
    )
    assert list(df.columns) == COLUMNS
    assert list(df["recipe_json"]) == [r.to_json() for r in recipes]
    assert seen == [(i + 1, 4, r.label()) for i, r in enumerate(recipes)]
    assert not df["cached"].any()
    dense, sparse = df.iloc[0], df.iloc[2]
    assert dense["label"] == "dense fp32" and dense["params_nonzero"] == dense["params_total"]
    assert sparse["kind"] == "unstructured" and sparse["sparsity"] == 0.5
    assert sparse["params_nonzero"] < 0.75 * sparse["params_total"]
    assert df.iloc[1]["size_bytes"] < dense["size_bytes"]  # 8-bit codes are smaller than fp32
    assert df["accuracy"].between(0.5, 1.0).all() and df["latency_ms_p50"].gt(0).all()
    assert (df["model"] == MODEL).all() and (df["mode"] == "quick").all()


def test_second_sweep_on_the_same_store_recomputes_nothing(wb, tmp_path, monkeypatch):
    recipes = grid(["unstructured"], [0, 0.5, 0.9], [32])
    store = ResultStore(tmp_path / "results.sqlite")
    first = run_sweep(MODEL, recipes, latency_budget_s=BUDGET_S, store=store, workbench=wb)
    calls = _counting(wb, monkeypatch)
    second = run_sweep(MODEL, recipes, latency_budget_s=BUDGET_S, store=store, workbench=wb)
    assert calls == []
    assert second["cached"].all() and not first["cached"].any()
    pd.testing.assert_frame_equal(first.drop(columns="cached"), second.drop(columns="cached"))
    pd.testing.assert_frame_equal(store.frame(MODEL), second)


def test_resume_computes_only_the_missing_recipes(wb, tmp_path, monkeypatch):
    recipes = grid(["unstructured"], [0, 0.25, 0.5, 0.75], [32])
    store = ResultStore(tmp_path / "results.sqlite")
    run_sweep(MODEL, recipes[:2], latency_budget_s=BUDGET_S, store=store, workbench=wb)
    calls = _counting(wb, monkeypatch)
    df = run_sweep(MODEL, recipes, latency_budget_s=BUDGET_S, store=store, workbench=wb)
    assert calls == recipes[2:]
    assert list(df["cached"]) == [True, True, False, False]
    assert len(store) == 4


def test_a_different_mode_or_batch_is_not_reused(wb, tmp_path, monkeypatch):
    recipes = [Recipe()]
    store = ResultStore(tmp_path / "results.sqlite")
    run_sweep(MODEL, recipes, latency_budget_s=BUDGET_S, store=store, workbench=wb)
    calls = _counting(wb, monkeypatch)
    df = run_sweep(MODEL, recipes, latency_batch=2, latency_budget_s=BUDGET_S, store=store, workbench=wb)
    assert len(calls) == 1 and not df["cached"].any() and df["latency_batch"].iloc[0] == 2


def test_fully_cached_sweep_does_not_load_the_model(wb, tmp_path, monkeypatch):
    recipes = grid(["unstructured"], [0, 0.5], [32])
    store = ResultStore(tmp_path / "results.sqlite")
    run_sweep(MODEL, recipes, latency_budget_s=BUDGET_S, store=store, workbench=wb)

    def no_loading(*_a, **_k):
        raise AssertionError("the model was loaded although every row is stored")

    monkeypatch.setattr(sweep_mod, "Workbench", no_loading)
    assert run_sweep(MODEL, recipes, store=store)["cached"].all()


def test_should_stop_returns_the_rows_finished_so_far(wb):
    recipes = grid(["unstructured"], [0, 0.25, 0.5, 0.75], [32])
    done = []
    df = run_sweep(
        MODEL,
        recipes,
        latency_budget_s=BUDGET_S,
        workbench=wb,
        on_result=lambda i, n, row: done.append(i),
        should_stop=lambda: len(done) >= 2,
    )
    assert len(df) == 2 and list(df["recipe_json"]) == [r.to_json() for r in recipes[:2]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model_id": "resnet9000"}, "unknown model"),
        ({"mode": "fast"}, "eval mode"),
        ({"latency_batch": 0}, "latency_batch"),
        ({"latency_budget_s": 0}, "latency_budget_s"),
        ({"recipes": ["dense"]}, "Recipe objects"),
    ],
)
def test_run_sweep_rejects_bad_arguments_before_any_work(kwargs, message):
    args = {"model_id": MODEL, "recipes": [Recipe()], **kwargs}
    with pytest.raises(ValueError, match=message):
        run_sweep(**args)


def test_workbench_of_another_model_is_refused(wb):
    with pytest.raises(ValueError, match="workbench holds"):
        run_sweep("lenet300-mnist", [Recipe()], workbench=wb)


# -- durability: SIGKILL mid-sweep -------------------------------------------------------------
KILL_GRID = {"kinds": ["unstructured"], "sparsities": [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "bits": [32]}
CHILD = f"""
import sys, time
from compress_core.study.store import ResultStore
from compress_core.study.sweep import grid, run_sweep

def report(i, n, row):  # called only after the row is committed
    print(row["recipe_json"], flush=True)
    time.sleep(0.3)  # stretch the sweep so the parent surely kills it part-way

run_sweep("{MODEL}", grid(**{KILL_GRID!r}), latency_budget_s={BUDGET_S}, store=ResultStore(sys.argv[1]),
          on_result=report)
print("FINISHED", flush=True)
"""


def test_sigkill_mid_sweep_loses_no_finished_row_and_the_rerun_resumes(tmp_path, wb, monkeypatch):
    db = tmp_path / "results.sqlite"
    watcher = ResultStore(db)  # creates the file; the child opens the same database
    env = {**os.environ, "PRUNESCOPE_THREADS": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while watcher.count() < 2:
            assert child.poll() is None, f"sweep child exited early: {child.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "sweep child wrote fewer than 2 rows in 180 s"
            time.sleep(0.02)
        alive_at_kill = child.poll() is None
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    watcher.close()
    assert alive_at_kill and child.returncode == -signal.SIGKILL and "FINISHED" not in out
    reported = [line for line in out.split("\n")[:-1] if line]  # whole lines only

    store = ResultStore(db)  # a fresh connection, as after a crash
    stored = store.count()
    assert len(reported) >= 1 and stored >= 2
    assert all(store.has(MODEL, rj, "quick", 1) for rj in reported)

    recipes = grid(**KILL_GRID)
    calls = _counting(wb, monkeypatch)
    df = run_sweep(MODEL, recipes, latency_budget_s=BUDGET_S, store=store, workbench=wb)
    assert len(calls) == len(recipes) - stored and int(df["cached"].sum()) == stored
    assert set(df.loc[df["cached"], "recipe_json"]) >= set(reported)
    assert len(store) == len(recipes)


# -- Pareto front ------------------------------------------------------------------------------
@pytest.fixture
def points() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["a", "b", "c", "d", "e", "f", "g", "h"],
            "size_bytes": [100, 50, 50, 20, 80, 20, 10, None],
            "accuracy": [0.99, 0.97, 0.95, 0.90, 0.96, 0.90, 0.50, 1.0],
        },
        index=[10, 11, 12, 13, 14, 15, 16, 17],
    )


def test_pareto_front_keeps_only_non_dominated_rows_sorted_by_x(points):
    # c is dominated by b (same size, lower accuracy), e by b; d and f are exact twins: both kept;
    # h has no size and cannot be compared.
    front = pareto_front(points)
    assert list(front["name"]) == ["g", "d", "f", "b", "a"]
    assert list(front["size_bytes"]) == sorted(front["size_bytes"])


def test_mark_pareto_is_aligned_with_the_frame_index(points):
    mask = mark_pareto(points, "size_bytes", "accuracy")
    assert mask.dtype == bool and list(mask.index) == list(points.index)
    assert list(points.loc[mask, "name"]) == ["a", "b", "d", "f", "g"]


def test_pareto_front_other_directions(points):
    # maximize size, minimize accuracy: b is dominated by e (bigger and worse); c survives now
    assert list(pareto_front(points, minimize_x=False, maximize_y=False)["name"]) == ["g", "d", "f", "c", "e", "a"]
    # the default front with its axes swapped is the same set, sorted by accuracy
    swapped = pareto_front(points, x="accuracy", y="size_bytes", minimize_x=False, maximize_y=False)
    assert list(swapped["name"]) == ["g", "d", "f", "b", "a"]


def test_pareto_front_of_an_empty_frame_is_empty():
    empty = pd.DataFrame({"size_bytes": [], "accuracy": []})
    assert pareto_front(empty).empty


def test_pareto_front_names_a_missing_column(points):
    with pytest.raises(ValueError, match="latency_ms_p50"):
        pareto_front(points, x="latency_ms_p50")


# -- what a sweep's table shows: chance level, the fronts, the size ratio, one shared latency ------------
@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "size_bytes": [1000, 500, 50, 40],
            "latency_ms_p50": [1.0, 0.5, 0.2, 0.1],
            "accuracy": [0.92, 0.6, 0.101, 0.12],
            "accuracy_ci_low": [0.90, 0.57, 0.084, None],  # the last has no CI: its accuracy decides
            "dense_artifact_bytes": [1000, 1000, None, 1000],
            "dense_size_bytes": [1100, 1100, 1100, 1100],
        },
        index=[7, 8, 9, 10],
    )


def test_a_row_is_at_chance_when_its_ci_reaches_one_over_the_classes(table):
    assert at_chance(table, classes=10).tolist() == [False, False, True, False]
    assert at_chance(table, classes=8).tolist() == [False, False, True, True]  # 0.12 <= 1/8
    assert at_chance(table, classes=0).tolist() == [True] * 4  # no classes: nothing beats guessing


def test_chance_level_models_never_join_a_front_however_small_or_fast(table):
    out = mark_fronts(table, classes=8)
    assert out["chance"].tolist() == [False, False, True, True]
    # row 10 is the smallest and the fastest, so over all rows it would be on both fronts
    assert mark_pareto(table, "size_bytes").tolist() == [True, True, False, True]
    assert mark_pareto(table, "latency_ms_p50").tolist() == [True, True, False, True]
    for flag in FRONTS:
        assert out[flag].dtype == bool and out[flag].tolist() == [True, True, False, False]
    assert list(out.index) == list(table.index) and "chance" not in table.columns  # a copy, aligned


def test_size_vs_dense_uses_the_dense_artefact_else_the_dense_size(table):
    assert size_vs_dense(table).tolist() == [1.0, 2.0, 22.0, 25.0]


def _latencies(*ms: float | None) -> pd.DataFrame:
    return pd.DataFrame({"latency_ms_p50": list(ms)})


def test_one_shared_latency_only_when_every_row_is_within_half_a_percent():
    assert shared_latency_ms(_latencies(2.0, 1.991, None)) == 2.0
    assert shared_latency_ms(_latencies(2.0, 1.98)) is None
    assert shared_latency_ms(_latencies(2.0, None)) is None  # one measured row: nothing shared
