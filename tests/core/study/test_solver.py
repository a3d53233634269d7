"""The budget solver: budgets and their messages, the knapsack allocation, and solves on a toy model whose
optimum is found by brute force and on LeNet-5 (the answer meets the budget when measured; deterministic)."""

import itertools
import random

import pytest
import torch
from torch import nn

from compress_core.base.recipe import Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.data.sets import TensorSet
from compress_core.models.spec import ModelSpec
from compress_core.study.solver import Budget, SearchSpace, allocate, exhaustive, meets, solve, violations
from compress_core.study.solver.budget import describe_violation
from compress_core.study.solver.candidates import recipe_of
from compress_core.study.solver.predict import NoiseMap, isotonic
from compress_core.study.solver.solve import check_runtime
from compress_core.study.store import ResultStore


# -- budgets ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size_bytes": 0}, "max size (bytes) must be a positive integer; got 0"),
        ({"max_size_bytes": -5}, "max size (bytes) must be a positive integer; got -5"),
        ({"max_size_bytes": 10.5}, "max size (bytes) must be a positive integer"),
        ({"max_latency_ms": float("nan")}, "max latency (ms) must be a positive number"),
        ({"max_latency_ms": 0}, "max latency (ms) must be a positive number"),
        ({"max_drop_pp": -1}, "between 0 and 100 percentage points"),
        ({"max_macs": True}, "max MACs must be a positive integer"),
        ({}, "at least one limit"),
        ({"max_size_bytes": 10, "batch": 0}, "latency batch must be a positive integer"),
    ],
)
def test_bad_budgets_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Budget(**kwargs)


def test_unknown_runtime_is_refused_before_any_work():
    with pytest.raises(ValueError, match="unknown runtime 'tpu'; choose one of torch"):
        check_runtime(Budget(max_latency_ms=1.0, runtime="tpu"))
    assert check_runtime(Budget(max_latency_ms=1.0)) == {}
    # a deployment runtime's latency is measured by the sweep on that runtime
    assert check_runtime(Budget(max_latency_ms=1.0, runtime="onnxruntime")) == {"runtime": "onnxruntime"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": ("none",)}, "prune kinds must be among unstructured, structured"),
        ({"bits": (5,)}, "bit-widths must be among"),
        ({"sparsities": (0.0,)}, r"sparsities must be fractions in \(0, 0.99\]"),
        ({"recovery": "magic"}, "recovery must be one of"),
    ],
)
def test_bad_search_spaces_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**kwargs)


def test_violations_say_which_limit_and_by_how_much():
    budget = Budget(max_size_bytes=1000, max_drop_pp=1.0)
    result = {"size_bytes": 1100, "accuracy": 0.97, "dense_accuracy": 0.99}
    broken = {v["constraint"]: v for v in violations(budget, result)}
    assert set(broken) == {"size_bytes", "drop_pp"}
    assert broken["size_bytes"]["over"] == 100 and broken["size_bytes"]["over_pct"] == pytest.approx(10.0)
    assert describe_violation(broken["size_bytes"]) == (
        "file size limit 1,000 bytes is infeasible: the best candidate measures 1,100 bytes, 100 bytes (10.0 %) over"
    )
    assert "accuracy drop limit 1 pp is infeasible" in describe_violation(broken["drop_pp"])
    assert meets(budget, {"size_bytes": 1000, "accuracy": 0.98, "dense_accuracy": 0.99})  # 1 pp exactly is within


# -- allocation ---------------------------------------------------------------------------------
def _convex_instance(rng: random.Random, layers: int, options: int):
    """Options one resource unit apart with convex decreasing costs: greedy marginal allocation is optimal."""
    objective, resources = [], []
    for _ in range(layers):
        gains = sorted((rng.uniform(0.1, 5.0) for _ in range(options - 1)), reverse=True)
        costs = [sum(gains)]
        for g in gains:
            costs.append(costs[-1] - g)
        objective.append(costs)
        resources.append([{"size_bytes": float(u)} for u in range(options)])
    return objective, resources


@pytest.mark.parametrize("seed", range(6))
def test_allocation_finds_the_known_optimum_of_convex_tables(seed):
    rng = random.Random(seed)
    objective, resources = _convex_instance(rng, layers=4, options=4)
    limit = {"size_bytes": float(rng.randint(2, 10))}
    got, best = allocate(objective, resources, limit, {}), exhaustive(objective, resources, limit, {})
    total = lambda c: sum(objective[i][j] for i, j in enumerate(c))  # noqa: E731
    assert got is not None and total(got) == pytest.approx(total(best))
    assert sum(resources[i][j]["size_bytes"] for i, j in enumerate(got)) <= limit["size_bytes"]


def test_allocation_meets_every_limit_and_is_close_on_random_tables():
    rng = random.Random(7)
    for _ in range(20):
        objective = [[rng.uniform(0, 3) for _ in range(4)] for _ in range(4)]
        resources = [[{"size_bytes": rng.uniform(0, 5), "macs": rng.uniform(0, 5)} for _ in range(4)] for _ in range(4)]
        limits = {"size_bytes": 9.0, "macs": 11.0}
        got, best = allocate(objective, resources, limits, {}), exhaustive(objective, resources, limits, {})
        assert (got is None) == (best is None)
        if got is not None:
            for k, lim in limits.items():
                assert sum(resources[i][j][k] for i, j in enumerate(got)) <= lim + 1e-9


def test_allocation_says_none_when_nothing_fits():
    objective = [[0.0, 1.0]]
    resources = [[{"size_bytes": 5.0}, {"size_bytes": 3.0}]]
    assert allocate(objective, resources, {"size_bytes": 10.0}, {"size_bytes": 8.0}) is None


def test_isotonic_fit_and_noise_map_are_monotone():
    _, ys = isotonic([0, 1, 2, 3], [0.0, 0.3, 0.1, 0.5])
    assert ys == sorted(ys) and ys[1] == pytest.approx(0.2)
    m = NoiseMap.fit([(1.0, 0.1), (2.0, 0.05), (4.0, 0.4)])
    assert m.drop(0.0) == 0.0 and m.drop(10.0) == pytest.approx(0.4)
    assert m.drop(m.noise_for(0.2)) == pytest.approx(0.2)


def test_recipe_of_picks_the_commonest_bits_and_lists_the_rest():
    space = SearchSpace()
    r = recipe_of("unstructured", {"a": (0.5, 4), "b": (0.0, 4), "c": (0.9, 2)}, space, "none")
    assert r.quant.bits == 4 and r.quant.layer_bits == (("c", 2),)
    assert r.prune.layer_sparsity == (("a", 0.5), ("c", 0.9)) and r.prune.scope == "layer"


# -- a toy model whose optimum is known by brute force ----------------------------------------------
def _toy_workbench() -> Workbench:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Linear(48, 4))
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so re-estimating them matters
        model[2].running_mean.uniform_(-0.5, 0.5)
        model[2].running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(400, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)  # the dense model is right by construction: accuracy = agreement
    spec = ModelSpec(
        "toy-mlp", "toy", "mnist", (1, 4, 4), 4, 16 * 48 + 48 * 4 + 52, None, "test", "MIT", builder=lambda: model
    )
    return Workbench("toy-mlp", model=model, spec=spec, eval_override=TensorSet("toy-400", x, y))


def test_toy_solve_matches_the_brute_force_optimum():
    wb = _toy_workbench()
    space = SearchSpace(sparsities=(0.5, 0.9), uniform_sparsities=(0.5,), bits=(4,))
    dense = wb.dense_facts()["artifact_bytes"]
    budget = Budget(max_size_bytes=int(dense * 0.68))  # optimum: layer 1 at 50 % + 4 bits, layer 4 at 4 bits
    sol = solve("toy-mlp", budget, space, workbench=wb, refine_rounds=0)
    layers = ["1", "4"]
    options = [(s, b) for s in (0.0, 0.5, 0.9) for b in (32, 4)]
    best = 0.0
    for combo in itertools.product(options, repeat=2):
        r = recipe_of("unstructured", dict(zip(layers, combo, strict=True)), space, "bn")  # auto: BatchNorm -> bn
        res = wb.evaluate(r, MeasureSettings(latency=False)).to_dict()
        if res["size_bytes"] <= budget.max_size_bytes:
            best = max(best, res["accuracy"])
    assert sol.feasible and sol.result["size_bytes"] <= budget.max_size_bytes
    assert Recipe.from_dict(sol.recipe).recovery == "bn"  # and its file, BatchNorm re-estimated, still fits
    assert sol.result["accuracy"] >= best - 1e-9


# -- LeNet-5: measured, deterministic, stored -----------------------------------------------------------
LENET_SPACE = SearchSpace(sparsities=(0.5, 0.9), uniform_sparsities=(0.9,), bits=(4,))


@pytest.fixture(scope="module")
def lenet_solves(tmp_path_factory):
    path = tmp_path_factory.mktemp("solver") / "results.sqlite"
    wb = Workbench("lenet5-mnist")
    budget = Budget(max_size_bytes=wb.dense_facts()["artifact_bytes"] // 12)
    with ResultStore(path) as store:
        first = solve("lenet5-mnist", budget, LENET_SPACE, store=store, workbench=wb, refine_rounds=1)
        rows_after_first = store.count("lenet5-mnist")
    with ResultStore(path) as store:  # a fresh Workbench: everything comes back from the store
        second = solve("lenet5-mnist", budget, LENET_SPACE, store=store, refine_rounds=1)
        rows_after_second = store.count("lenet5-mnist")
    return budget, first, second, rows_after_first, rows_after_second, path


@pytest.mark.slow
def test_lenet_answer_meets_the_budget_when_measured(lenet_solves):
    budget, sol, *_ = lenet_solves
    assert sol.feasible and sol.infeasible == []
    assert sol.result["size_bytes"] <= budget.max_size_bytes and meets(budget, sol.result)
    assert sol.uniform_best is not None and sol.result["accuracy"] >= sol.uniform_best["accuracy"]
    assert sol.prediction_error["size_bytes"] == sol.result["size_bytes"] - sol.predicted["size_bytes"]
    assert set(sol.result) >= {"accuracy", "size_bytes", "latency_ms_p50", "macs", "recipe"}


@pytest.mark.slow
def test_lenet_solve_is_deterministic_and_read_back_from_the_store(lenet_solves):
    _, first, second, rows_first, rows_second, _ = lenet_solves
    assert second.recipe == first.recipe and second.result["accuracy"] == first.result["accuracy"]
    assert rows_second == rows_first  # nothing new was measured


def test_an_impossible_budget_names_the_constraint_and_the_gap():
    sol = solve("lenet5-mnist", Budget(max_size_bytes=100), LENET_SPACE, refine_rounds=0)
    assert not sol.feasible and sol.recipe is None
    assert sol.infeasible[0].startswith(
        "file size limit 100 bytes is infeasible: the smallest recipe in the search space measures "
    )
    assert sol.infeasible[0].endswith(" over") and sol.candidates == []


# -- the CLI --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-size-bytes", "0"], "--max-size-bytes must be positive; got 0"),
        (["--max-size-bytes", "-3"], "--max-size-bytes must be positive; got -3"),
        (["--max-latency-ms", "abc"], "--max-latency-ms must be a float number"),
        (["--max-drop-pp", "150"], "between 0 and 100 percentage points"),
        ([], "a budget needs at least one limit"),
        (["--max-latency-ms", "2", "--runtime", "tpu"], "unknown runtime 'tpu'"),
        (["--max-size-bytes", "100", "--bits-choices", "2,x"], "--bits-choices must be a comma list"),
        (["--max-size-bytes", "100"], "file size limit 100 bytes is infeasible: the smallest recipe"),
    ],
)
def test_cli_bad_budgets_exit_2_with_one_line(argv, message, capsys, tmp_path):
    from compress_core.cli.main import main

    code = main(["solve", "--model", "lenet5-mnist", "--store", str(tmp_path / "r.sqlite"), "--json", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_cli_prints_one_json_object_and_saves_the_artefact(lenet_solves, capsys, tmp_path):
    import json

    from compress_core.cli.main import main

    budget, first, *_, path = lenet_solves
    argv = [
        "solve",
        "--model",
        "lenet5-mnist",
        "--max-size-bytes",
        str(budget.max_size_bytes),
        "--sparsities",
        "0.5,0.9",
        "--uniform-sparsities",
        "0.9",
        "--bits-choices",
        "4",
        "--store",
        str(path),
        "--json",
        "--save",
        str(tmp_path / "answer.psz"),
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"recipe", "result", "uniform_best", "predicted"} <= set(out)
    assert out["recipe"]["prune"] == json.loads(json.dumps(first.recipe))["prune"]
    assert (tmp_path / "answer.psz").stat().st_size == out["result"]["size_bytes"]


@pytest.mark.slow
def test_an_executor_measures_the_grid_and_the_candidates_with_the_same_answer():
    from compress_core.study.executors import InProcessExecutor

    wb = Workbench("lenet5-mnist")  # workers rebuild models by zoo id, as a cluster's do
    budget = Budget(max_size_bytes=wb.dense_facts()["artifact_bytes"] // 12)
    plain = solve("lenet5-mnist", budget, LENET_SPACE, workbench=wb, refine_rounds=0)

    class Counting(InProcessExecutor):  # stands in for a cluster: every measurement goes through measure()
        calls = 0

        def measure(self, model_id, recipes, settings, should_stop=None):
            Counting.calls += len(recipes)
            yield from super().measure(model_id, recipes, settings, should_stop)

    sol = solve("lenet5-mnist", budget, LENET_SPACE, workbench=wb, refine_rounds=0, executor=Counting())
    assert Counting.calls >= len(sol.candidates) + 1  # the uniform grid and every candidate went through it
    assert sol.recipe == plain.recipe and sol.result["accuracy"] == plain.result["accuracy"]
