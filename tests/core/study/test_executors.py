"""Executors without a cluster: the registry, the spec parser, the in-process executor, the worker's cached
Workbench, how Ray tasks are cut and sized, the missing-Ray message, and where-fields in the store."""

from __future__ import annotations

import ast
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from compress_core.base.recipe import FinetuneSpec, Recipe
from compress_core.bench import process
from compress_core.bench.workbench import Workbench
from compress_core.cli import main as cli
from compress_core.deploy.runtimes.base import RuntimeUnsupported
from compress_core.study.executors import (
    EXECUTORS,
    WHERE_FIELDS,
    InProcessExecutor,
    RayExecutor,
    Settings,
    make_executor,
    ray_exec,
    stamped,
    worker,
)
from compress_core.study.store import ResultStore
from compress_core.study.sweep import grid, measure_recipes, run_sweep

MODEL = "lenet5-mnist"


def test_every_registered_executor_is_reachable_by_its_key():
    assert set(EXECUTORS) == {"inprocess", "ray"}
    assert all(cls.key == key for key, cls in EXECUTORS.items())
    assert isinstance(make_executor(None), InProcessExecutor)
    assert isinstance(make_executor("inprocess"), InProcessExecutor)
    ex = make_executor("ray://head:10001", cpus_per_config=2)
    assert isinstance(ex, RayExecutor) and ex.address == "ray://head:10001" and ex.cpus_per_config == 2
    assert make_executor(ex) is ex


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"address": " "}, "Ray address"),
        ({"cpus_per_config": 0}, "cpus per config must be a positive integer"),
        ({"finetune_cpus": 1.5}, "fine-tune cpus must be a positive integer"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_ray_executor_rejects_bad_settings_before_connecting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RayExecutor(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"mode": "fast"}, "eval mode"), ({"latency_batch": 0}, "latency_batch"), ({"latency_budget_s": -1}, "budget")],
)
def test_settings_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Settings(**kwargs)


def test_in_process_executor_stamps_where_each_result_was_measured():
    wb = Workbench(MODEL)
    recipes = grid(["unstructured"], [0, 0.5], [32])
    out = list(InProcessExecutor(wb).measure(MODEL, recipes, Settings(latency_budget_s=0.005)))
    assert [o.index for o in out] == [0, 1] and all(o.attempts == 1 for o in out)
    r = out[1].result
    assert r["recipe_label"] == recipes[1].label() and r["host"] == socket.gethostname()
    assert r["executor"] == "inprocess" and r["cpu_model"] and r["attempts"] == 1


def test_in_process_executor_stops_when_asked():
    ex = InProcessExecutor(Workbench(MODEL))
    recipes = grid(["unstructured"], [0, 0.5, 0.9], [32])
    done = []
    for o in ex.measure(MODEL, recipes, Settings(latency_budget_s=0.005), should_stop=lambda: len(done) >= 1):
        done.append(o)
    assert len(done) == 1


def _refusing(wb: Workbench, refused: float, monkeypatch) -> None:
    """``wb`` as a runtime that cannot take the recipe at sparsity ``refused`` (an op it lacks)."""
    real = wb.evaluate

    def evaluate(recipe, *args, **kwargs):
        if recipe.prune.sparsity == refused:
            raise RuntimeUnsupported("openvino cannot take this model: reading the ONNX model failed")
        return real(recipe, *args, **kwargs)

    monkeypatch.setattr(wb, "evaluate", evaluate)


def test_a_config_the_runtime_cannot_take_is_a_failed_row_and_the_sweep_goes_on(monkeypatch, tmp_path):
    wb = Workbench(MODEL)
    _refusing(wb, 0.5, monkeypatch)
    recipes = grid(["unstructured"], [0, 0.5, 0.9], [32])
    with ResultStore(tmp_path / "r.sqlite") as store:
        df = run_sweep(MODEL, recipes, store=store, workbench=wb, latency_budget_s=0.005)
        assert sorted(df["sparsity"]) == [0.0, 0.9] and len(store.frame(MODEL)) == 2
    (failed,) = df.attrs["failed"]
    assert failed["label"] == recipes[1].label() and failed["error"].startswith("openvino cannot take this model")
    process.forget()
    process.keep(wb)  # the same refusal on a Ray worker: that config alone comes back failed
    items = [(0, recipes[1].to_json()), (1, recipes[0].to_json())]
    before = torch.get_num_threads()
    try:
        (i0, r0, e0), (i1, r1, e1) = worker.measure_group(MODEL, items, Settings(latency_budget_s=0.005), 1, "ray")
    finally:
        torch.set_num_threads(before)
    assert (i0, r0) == (0, None) and e0.startswith("openvino cannot take")
    assert i1 == 1 and r1 is not None and e1 == ""


def test_worker_keeps_one_workbench_per_model_and_runs_with_its_cpu_request(monkeypatch):
    process.forget()
    before = torch.get_num_threads()
    try:
        items = [(3, Recipe().to_json())]
        ((index, result, error),) = worker.measure_group(MODEL, items, Settings(latency_budget_s=0.005), 1, "ray")
        assert index == 3 and error == "" and result["latency_threads"] == 1 and result["executor"] == "ray"
        assert process.workbench(MODEL) is process.workbench(MODEL)  # built once per worker process
    finally:
        torch.set_num_threads(before)


def _ft(recipe: Recipe) -> Recipe:
    return replace(recipe, finetune=FinetuneSpec(epochs=1, max_samples=64))


def test_configs_sharing_one_fine_tune_share_one_task_which_starts_first():
    plain = grid(["unstructured"], [0, 0.5], [32, 8])
    recipes = [plain[0], plain[1], _ft(plain[2]), _ft(plain[3])]  # the two fine-tuned share pruning + tuning
    tasks = RayExecutor(cpus_per_config=1).tasks(recipes, largest=8)
    assert [[i for i, _ in t.items] for t in tasks] == [[2, 3], [0], [1]]
    assert [t.cpus for t in tasks] == [2, 1, 1]  # fine-tuning asks for twice the CPUs


def test_fine_tune_cpus_leave_room_for_two_configs_per_node_unless_set():
    ft = _ft(grid(["unstructured"], [0.5], [32])[0])
    assert RayExecutor(cpus_per_config=1).cpus_for(ft, largest=2) == 1  # a 2-core node still runs two
    assert RayExecutor(cpus_per_config=2).cpus_for(ft, largest=16) == 4
    assert RayExecutor(cpus_per_config=1, finetune_cpus=3).cpus_for(ft, largest=16) == 3


def test_a_config_larger_than_every_node_is_refused():
    with pytest.raises(ValueError, match="asks for 4 CPUs but the largest Ray node has 2"):
        RayExecutor(cpus_per_config=4).tasks([Recipe()], largest=2)


def test_without_ray_the_executor_and_the_cli_say_how_to_install_it(monkeypatch, capsys):
    real = ray_exec.importlib.util.find_spec
    monkeypatch.setattr(ray_exec.importlib.util, "find_spec", lambda name: None if name == "ray" else real(name))
    with pytest.raises(ValueError, match=r"pip install -e '\.\[ray\]'"):
        measure_recipes(MODEL, [Recipe()], executor="local")
    assert cli.main(["sweep", "--ray", "local", "--no-store", "--sparsities", "0", "--bits-list", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ray needs Ray" in err[0] and ".[ray]" in err[0]


def test_cli_ray_flags_need_an_address(capsys):
    assert cli.main(["sweep", "--ray-cpus-per-config", "2", "--no-store"]) == 2
    assert "go with --ray ADDRESS" in capsys.readouterr().err


def test_store_keeps_where_a_latency_was_measured_with_that_latency(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    rj = Recipe().to_json()
    quiet = stamped(
        {"model": MODEL, "latency_ms_p50": 1.0, "latency_noisy": False, "speedup_spread": 0.01, "latency_threads": 1},
        "ray",
    )
    quiet["host"] = "worker-a"
    store.put(MODEL, rj, "quick", 1, quiet)
    noisy = stamped(
        {
            "model": MODEL,
            "latency_ms_p50": 9.0,
            "latency_noisy": True,
            "speedup_spread": 0.5,
            "latency_threads": 2,
            "accuracy": 0.9,
        },
        "inprocess",
    )
    kept = store.put(MODEL, rj, "quick", 1, noisy)
    assert kept["latency_ms_p50"] == 1.0 and kept["host"] == "worker-a" and kept["executor"] == "ray"
    assert kept["latency_threads"] == 1 and kept["accuracy"] == 0.9  # the rest comes from the new result
    assert set(WHERE_FIELDS) <= set(store.frame(MODEL).columns)


def test_what_runs_on_a_worker_cannot_write_the_store():
    """The driver alone writes the results store: neither the worker code nor the Ray executor imports it."""
    for module in (worker, ray_exec):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        assert not any(name.split(".")[-1] == "store" for name in imported), module.__name__
