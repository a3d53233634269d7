"""A sweep's rows seed the solve: the uniform grid rows a sweep stored with the same recipe, recovery, mode
and batch are read back instead of measured, its other uniform rows join the grid, and rows of another
mode, runtime, batch, recovery or thread count (under a latency limit) are never taken for this solve's."""

from __future__ import annotations

import torch

from compress_core.base.recipe import FinetuneSpec, QuantSpec, Recipe
from compress_core.bench.workbench import Workbench
from compress_core.study.solver import Budget, SearchSpace, solve
from compress_core.study.solver.measured import uniform_recipes, verify_uniform
from compress_core.study.solver.reuse import held, is_uniform, stored_uniform, timed_here
from compress_core.study.store import ResultStore
from compress_core.study.sweep import grid, run_sweep

MODEL = "lenet5-mnist"
SPACE = SearchSpace(sparsities=(0.5, 0.9), uniform_sparsities=(0.9,), bits=(4,))  # LeNet-5: recovery none


def _row(accuracy: float, size: int = 1000, threads: int | None = None, latency: float | None = None) -> dict:
    return {
        "model": MODEL,
        "accuracy": accuracy,
        "dense_accuracy": 0.99,
        "size_bytes": size,
        "macs": 1000,
        "latency_ms_p50": latency,
        "latency_threads": threads,
    }


# -- which stored rows count -----------------------------------------------------------------------------------
def test_only_plain_uniform_recipes_of_the_space_count():
    r = grid(["unstructured"], [0.8], [4])[0]
    assert is_uniform(r, SPACE, "none")
    assert is_uniform(r.with_prune(scope="layer"), SPACE, "none")  # one sparsity per layer is uniform too
    assert not is_uniform(r.with_recovery("reconstruct"), SPACE, "none")  # another recovery
    assert not is_uniform(r.with_prune(criterion="l2"), SPACE, "none")
    assert not is_uniform(r.with_quant(bits=3), SPACE, "none")  # bits outside the space
    assert not is_uniform(r.with_prune(kind="structured"), SPACE, "none")  # kind outside the space
    assert not is_uniform(r.with_prune(layer_sparsity=(("conv1", 0.5),)), SPACE, "none")
    assert not is_uniform(r.with_quant(layer_bits=(("conv1", 8),)), SPACE, "none")
    assert not is_uniform(Recipe(prune=r.prune, quant=QuantSpec(bits=4), finetune=FinetuneSpec()), SPACE, "none")


def test_rows_of_another_mode_runtime_batch_or_recovery_are_not_reused(tmp_path):
    budget = Budget(max_size_bytes=10_000)
    mine = grid(["unstructured"], [0.8], [4])[0]
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.put(MODEL, mine.to_json(), "full", 1, _row(0.5))  # another evaluation set
        store.put(MODEL, mine.to_json(), "quick", 1, _row(0.5), runtime="onnxruntime")  # another runtime
        store.put(MODEL, mine.to_json(), "quick", 8, _row(0.5))  # another latency batch
        store.put(MODEL, mine.with_recovery("reconstruct").to_json(), "quick", 1, _row(0.5))  # another recovery
        store.put("lenet300-mnist", mine.to_json(), "quick", 1, _row(0.5))  # another model
        assert held(store, MODEL, [mine], "quick", budget) == 0
        assert stored_uniform(store, MODEL, SPACE, "none", budget, []) == []
        store.put(MODEL, mine.to_json(), "quick", 1, _row(0.5))
        assert held(store, MODEL, [mine], "quick", budget) == 1
        assert stored_uniform(store, MODEL, SPACE, "none", budget, []) == [mine]
        assert stored_uniform(store, MODEL, SPACE, "none", budget, [mine]) == []  # already in the grid
        on_ort = Budget(max_size_bytes=10_000, runtime="onnxruntime")
        assert held(store, MODEL, [mine], "quick", on_ort) == 1  # the runtime's own rows


def test_under_a_latency_limit_rows_timed_on_other_threads_are_not_reused(tmp_path):
    here = torch.get_num_threads()
    size, latency = Budget(max_size_bytes=10_000), Budget(max_latency_ms=5.0)
    assert timed_here(_row(0.5, threads=here + 1, latency=1.0), size)  # no latency limit: any row
    assert not timed_here(_row(0.5, threads=here + 1, latency=1.0), latency)
    assert not timed_here(_row(0.5, threads=here), latency)  # not timed at all
    assert timed_here(_row(0.5, threads=here, latency=1.0), latency)
    mine = grid(["unstructured"], [0.8], [4])[0]
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.put(MODEL, mine.to_json(), "quick", 1, _row(0.5, threads=here + 1, latency=1.0))
        assert held(store, MODEL, [mine], "quick", latency) == 0
        assert stored_uniform(store, MODEL, SPACE, "none", latency, []) == []
        assert held(store, MODEL, [mine], "quick", size) == 1


def test_uniform_rows_stored_in_the_final_mode_join_the_verified_ones(tmp_path):
    """The best few on quick are verified in ``full``; one stored in ``full`` already joins them at no cost,
    and wins when it is the most accurate there."""
    wb = Workbench(MODEL)
    recipes = uniform_recipes(SearchSpace(uniform_sparsities=(0.5, 0.6, 0.7, 0.8), bits=(4,)), "none")
    quick = [_row(0.99 - 0.01 * i) for i in range(len(recipes))]  # best first on quick
    budget = Budget(max_size_bytes=10_000)
    tally: dict = {}
    with ResultStore(tmp_path / "r.sqlite") as store:
        for i, r in enumerate(recipes):  # every one in full already: nothing is measured here
            store.put(MODEL, r.to_json(), "full", 1, _row(0.95 if i == len(recipes) - 1 else 0.9))
        best = verify_uniform(wb, budget, quick, recipes, "full", store, {}, None, tally)
    assert best is not None and best["recipe_json"] == recipes[-1].to_json() and best["accuracy"] == 0.95
    assert tally["verified_from_store"] == len(recipes) - 1  # every uniform one but the dense model


# -- a whole solve on a store a sweep filled ---------------------------------------------------------------------
def test_a_solve_reads_a_sweeps_rows_back_instead_of_measuring_them(tmp_path):
    swept = grid(["unstructured"], [0.0, 0.8, 0.9], [32, 4])  # the Sweep page's grid for LeNet-5 (recovery none)
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        run_sweep(MODEL, swept, store=store, workbench=Workbench(MODEL))
        stored = {r.to_json(): store.get(MODEL, r.to_json(), "quick", 1) for r in swept}
        decoy = grid(["unstructured"], [0.7], [4], recovery="reconstruct")[0]  # another recovery: not this solve's
        store.put(MODEL, decoy.to_json(), "quick", 1, _row(0.123))
        store.put(MODEL, swept[-1].with_prune(sparsity=0.6).to_json(), "full", 1, _row(0.123))  # another mode

    wb = Workbench(MODEL)  # a fresh one: nothing in memory, so whatever it evaluates is measured now
    evaluated: list[str] = []
    evaluate = wb.evaluate

    def counting(recipe, *args, **kwargs):
        evaluated.append(recipe.to_json())
        return evaluate(recipe, *args, **kwargs)

    wb.evaluate = counting  # type: ignore[method-assign]
    budget = Budget(max_size_bytes=wb.dense_facts()["artifact_bytes"] // 12)
    with ResultStore(path) as store:
        sol = solve(MODEL, budget, SPACE, store=store, workbench=wb, refine_rounds=0)

    assert sol.reuse["grid"] == 4 and sol.reuse["grid_from_store"] == 4  # dense, 4-bit, 90 % at 32 and 4 bits
    assert sol.reuse["extra_from_store"] == 2  # the sweep's 80 % rows joined the grid
    assert not set(stored) & set(evaluated)  # no swept recipe was measured again
    rows = {r["recipe_json"]: r for r in sol.uniform_rows}
    assert set(rows) == set(stored)
    for key, row in stored.items():  # the sweep's own numbers, latency included (a new timing would differ)
        assert (rows[key]["accuracy"], rows[key]["latency_ms_p50"]) == (row["accuracy"], row["latency_ms_p50"])
    assert all(r["accuracy"] != 0.123 for r in sol.uniform_rows)
    assert any(n.startswith("results store: 4 of 4 uniform grid rows reused") for n in sol.notes)
    assert sol.feasible and sol.notes[-1].startswith("returned: ")
