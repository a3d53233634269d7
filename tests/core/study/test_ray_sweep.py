"""Sweeps on a local Ray: rows equal the in-process sweep's, the driver alone writes the store, and a
worker killed mid-config costs only that config (retried once, then reported failed).

One local Ray per module (2 CPUs, no dashboard); skipped with the reason when Ray is not installed."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from compress_core.study.executors import RayExecutor
from compress_core.study.store import ResultStore
from compress_core.study.sweep import grid, measure_recipes, run_sweep

ray = pytest.importorskip("ray", reason="Ray is not installed (the optional extra: pip install -e '.[ray]')")

pytestmark = pytest.mark.slow  # one local Ray start and its worker processes: ~30-40 s for the module

MODEL = "lenet5-mnist"
RECIPES = grid(["unstructured"], [0, 0.5], [32, 4])  # 4 configs
# Each worker caches results per recipe and latency per structure: the kill tests use structures of their
# own, so every config really times itself (a paired latency of ~0.6 s) while the killer looks for it.
KILL_RECIPES = grid(["structured"], [0.2, 0.4, 0.6, 0.8], [32])
DOOMED = grid(["structured"], [0.5], [32])
EXACT = ["accuracy", "accuracy_ci_low", "agreement", "size_bytes", "params_total", "params_nonzero", "macs"]
TASK_TITLE = f"ray::prunescope-{MODEL}"  # a Ray worker's process title while it runs one of our tasks


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    # The workers inherit this environment when the local Ray starts (data dir, offline, a private cache).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMPRESS_CACHE_DIR", str(tmp_path_factory.mktemp("ray-cache")))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield RayExecutor("local")  # reuses this connection, so closing it leaves Ray up
        finally:
            ray.shutdown()


def _task_pids() -> list[int]:
    """PIDs of Ray workers running a PruneScope task now (their title is the task name)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
            except OSError:
                continue
            if title == TASK_TITLE:
                pids.append(int(entry.name))
    return pids


class Killer(threading.Thread):
    """SIGKILLs a worker in the middle of a config, ``times`` times (each time a new task is running)."""

    def __init__(self, times: int) -> None:
        super().__init__(daemon=True)
        self.times, self.killed, self.stop = times, [], threading.Event()

    def run(self) -> None:
        while len(self.killed) < self.times and not self.stop.is_set():
            pids = [p for p in _task_pids() if p not in self.killed]
            if pids:
                time.sleep(0.2)  # well inside the config: the latency rounds alone take longer
                os.kill(pids[0], signal.SIGKILL)
                self.killed.append(pids[0])
            time.sleep(0.01)


def test_ray_rows_equal_the_in_process_rows_and_say_where_they_ran(executor, tmp_path):
    local = run_sweep(MODEL, RECIPES, latency_budget_s=0.02)
    store = ResultStore(tmp_path / "results.sqlite")
    seen = []
    df = run_sweep(
        MODEL, RECIPES, latency_budget_s=0.02, store=store, executor=executor, on_result=lambda i, n, r: seen.append(i)
    )
    assert list(df["recipe_json"]) == [r.to_json() for r in RECIPES] and seen == [1, 2, 3, 4]
    assert df[EXACT].equals(local[EXACT])
    assert df["latency_ms_p50"].gt(0).all() and df["speedup"].gt(0).all()
    assert (df["host"] == socket.gethostname()).all() and df["cpu_model"].str.len().gt(0).all()
    assert (df["executor"] == "ray").all() and (local["executor"] == "inprocess").all()
    assert (df["latency_threads"] == 1).all()  # torch threads = the task's CPU request
    assert (df["attempts"] == 1).all() and df.attrs["failed"] == []
    # the driver wrote every row; rerunning the same sweep measures nothing
    assert store.count(MODEL) == 4
    again = run_sweep(MODEL, RECIPES, latency_budget_s=0.02, store=store, executor=executor)
    assert again["cached"].all() and again[EXACT].equals(df[EXACT])


def test_measure_recipes_returns_results_aligned_with_the_recipes(executor):
    results = measure_recipes(MODEL, RECIPES[::-1], executor=executor, latency_budget_s=0.02)
    assert [r["recipe_label"] for r in results] == [r.label() for r in RECIPES[::-1]]
    assert all(r["executor"] == "ray" and r["host"] for r in results)


def test_ctrl_c_on_the_driver_keeps_every_finished_row_and_the_rerun_skips_them(executor, tmp_path):
    recipes = grid(["unstructured"], [0.3, 0.6], [32, 8])
    store = ResultStore(tmp_path / "results.sqlite")
    finished = []

    def interrupt_after_two(i, n, row):
        finished.append(row["recipe_json"])
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(MODEL, recipes, latency_budget_s=0.02, store=store, executor=executor, on_result=interrupt_after_two)
    # each row is committed before on_result hears of it; results still on their way are simply not there
    assert store.count(MODEL) == 2 and all(store.has(MODEL, rj, "quick", 1) for rj in finished)
    df = run_sweep(MODEL, recipes, latency_budget_s=0.02, store=store, executor=executor)
    assert int(df["cached"].sum()) == 2 and len(df) == 4 and store.count(MODEL) == 4


def test_a_worker_killed_mid_config_costs_only_that_config(executor, tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    killer = Killer(times=1)
    killer.start()
    try:
        df = run_sweep(MODEL, KILL_RECIPES, latency_budget_s=0.6, store=store, executor=executor)
    finally:
        killer.stop.set()
    assert len(killer.killed) == 1
    assert list(df["recipe_json"]) == [r.to_json() for r in KILL_RECIPES] and df.attrs["failed"] == []
    assert sorted(df["attempts"]) == [1, 1, 1, 2]  # the killed config was measured again; the others once
    assert store.count(MODEL) == 4


def test_a_config_whose_worker_dies_on_every_attempt_is_reported_failed(executor, tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    retry_once = RayExecutor("local", max_attempts=2)
    killer = Killer(times=2)
    killer.start()
    try:
        df = run_sweep(MODEL, DOOMED, latency_budget_s=0.6, store=store, executor=retry_once)
    finally:
        killer.stop.set()
    assert len(killer.killed) == 2 and df.empty
    assert [f["recipe_json"] for f in df.attrs["failed"]] == [DOOMED[0].to_json()]
    assert "lost 2 time(s) to a dying worker" in df.attrs["failed"][0]["error"]
    assert store.count() == 0  # nothing half-written, nothing at all for the lost config
