"""Sweep throughput: configs per minute of ``run_sweep`` (one shared Workbench) vs a naive loop.

- shared: ``run_sweep`` on one Workbench: the model is loaded once, importance is sorted once per
  criterion, dense predictions are computed once per eval set, and latency once per structure
  (all unstructured and simulated-quantization recipes share the dense structure's timing).
- naive: per config, a fresh model load and Workbench (deep copy + prune with its own importance
  sort + dense and compressed predictions + sizes + dense and compressed latency), which is what a
  hand-written loop over ``apply_recipe`` + evaluation does.
- resumed: the same ``run_sweep`` again on the ResultStore the shared run wrote (nothing recomputed).

Both measure with the same code, so their accuracies must agree (the table shows the largest
difference). Datasets are loaded (and cached in-process) before timing; weights are not.

- Ray (``--ray-workers N``, needs the ``[ray]`` extra): the same grid, plain and with every pruned
  point fine-tuned (1 epoch on ``--finetune-samples`` images), in-process (1 and 2 threads) vs
  ``run_sweep(executor=RayExecutor("local"))`` with N one-CPU workers on a fresh local Ray per run.
  Ray's own start is timed apart. *Cold*: worker start-up (torch import) and each worker's model and
  dataset loading are inside the wall time. *Warm*: each worker first loads the model and datasets on a
  throwaway Workbench, the same warm-up the in-process runs get; its Workbench caches still start
  empty. The driver writes a temporary store in every run; Ray workers run at niceness 0 here.

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/sweep_throughput.py [--eval full] [--threads 1]
       python benchmarks/sweep_throughput.py --sparsities 0,0.5 --bits 32 --budget 0.02   (a quick check)
       COMPRESS_DATA_DIR=../shared/data python benchmarks/sweep_throughput.py --models resnet20-cifar10 --ray-only
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

import compress_core  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
from compress_core import models
from compress_core.base.machine import environment
from compress_core.base.recipe import FinetuneSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.base.threads import configure_threads
from compress_core.bench.workbench import Workbench
from compress_core.study.executors import RayExecutor, ray_missing
from compress_core.study.store import ResultStore
from compress_core.study.sweep import grid, run_sweep

PHASES = ("compress_s", "eval_s", "size_s", "latency_s")


def finetune_spec(args: argparse.Namespace) -> FinetuneSpec:
    """The fine-tune sweep's recovery: 1 epoch on ``--finetune-samples`` training images."""
    return FinetuneSpec(epochs=1, max_samples=args.finetune_samples)


def naive_loop(model_id: str, recipes: list[Recipe], mode: str, batch: int, budget: float) -> tuple[list, list]:
    accuracies, seconds = [], []
    for recipe in recipes:
        wb = Workbench(model_id, model=models.load(model_id))  # nothing cached between configs
        r = wb.evaluate(recipe, MeasureSettings(mode=mode, batch=batch, budget_s=budget))
        accuracies.append(r.accuracy)
        seconds.append(r.seconds)
    return accuracies, seconds


def shared_sweep(
    model_id: str, recipes: list[Recipe], mode: str, batch: int, budget: float, store: ResultStore | None
) -> tuple[list, list]:
    wb = Workbench(model_id)
    seconds: list[dict] = []
    real = wb.evaluate

    def timed(recipe: Recipe, **kwargs: object):  # collect per-phase seconds without changing anything
        r = real(recipe, **kwargs)
        seconds.append(r.seconds)
        return r

    wb.evaluate = timed  # type: ignore[method-assign]
    df = run_sweep(
        model_id, recipes, mode=mode, latency_batch=batch, latency_budget_s=budget, store=store, workbench=wb
    )
    return list(df["accuracy"]), seconds


def timed_run(fn: Callable[[], tuple[list, list]]) -> tuple[float, list, list]:
    t0 = time.perf_counter()
    acc, seconds = fn()
    return time.perf_counter() - t0, acc, seconds


def phase_text(seconds: list[dict]) -> str:
    totals = pd.DataFrame(seconds).reindex(columns=list(PHASES)).fillna(0.0).sum() if seconds else None
    if totals is None:
        return "-"
    return " / ".join(f"{totals[p]:.1f}" for p in PHASES)


def bench(model_id: str, recipes: list[Recipe], mode: str, batch: int, budget: float) -> list[dict]:
    Workbench(model_id).evaluate(Recipe(), MeasureSettings(mode=mode, batch=batch, budget_s=budget))  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(Path(tmp) / "results.sqlite")
        shared = timed_run(lambda: shared_sweep(model_id, recipes, mode, batch, budget, store))
        resumed = timed_run(
            lambda: (
                list(
                    run_sweep(model_id, recipes, mode=mode, latency_batch=batch, latency_budget_s=budget, store=store)[
                        "accuracy"
                    ]
                ),
                [],
            )
        )
        store.close()
    naive = timed_run(lambda: naive_loop(model_id, recipes, mode, batch, budget))
    rows = []
    for name, (wall_s, acc, seconds) in (
        ("naive loop", naive),
        ("run_sweep (shared Workbench)", shared),
        ("run_sweep resumed from store", resumed),
    ):
        diff = max(abs(a - b) for a, b in zip(acc, naive[1], strict=True))
        rows.append(
            {
                "model": model_id,
                "method": name,
                "configs": len(recipes),
                "wall_s": wall_s,
                "per_min": 60 * len(recipes) / wall_s,
                "speedup": naive[0] / wall_s,
                "acc_diff": diff,
                "phases": phase_text(seconds),
            }
        )
    return rows


def _timed_sweep(model_id: str, recipes: list[Recipe], args: argparse.Namespace, **kwargs: object):
    with tempfile.TemporaryDirectory() as tmp, ResultStore(Path(tmp) / "results.sqlite") as store:
        workers_before = worker_cpu()
        t0, cpu0 = time.perf_counter(), time.process_time()
        df = run_sweep(
            model_id,
            recipes,
            mode=args.eval,
            latency_batch=args.batch,
            latency_budget_s=args.budget,
            store=store,
            **kwargs,  # type: ignore[arg-type]
        )
        wall, driver_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        per_worker = {pid: cpu - workers_before.get(pid, 0.0) for pid, cpu in worker_cpu().items()}
        df.attrs["cpu_s"] = driver_cpu + sum(per_worker.values())
        df.attrs["busiest_s"] = max([driver_cpu, *per_worker.values()])
        return wall, df


def worker_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each Ray worker of the local Ray this process started, by PID
    (worker -> its raylet -> this process); empty without one."""
    tick, me, out = os.sysconf("SC_CLK_TCK"), os.getpid(), {}

    def stat(pid: int) -> list[str]:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
            if not title.startswith("ray::") or "Agent" in title:
                continue
            fields = stat(int(entry.name))
            if int(stat(int(fields[1]))[1]) == me:  # fields[1]: the parent (the raylet)
                out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, ValueError, IndexError):
            continue
    return out


def warm_worker(model_id: str, recipe_json: str, mode: str, budget: float) -> int:
    """On a Ray worker: load the model and datasets into this process by measuring one recipe on a
    throwaway Workbench (the in-process runs get the same warm-up); the worker's PID."""
    configure_threads(1)
    Workbench(model_id).evaluate(Recipe.from_json(recipe_json), MeasureSettings(mode=mode, budget_s=budget))
    return os.getpid()


def ray_run(model_id: str, recipes: list[Recipe], args: argparse.Namespace, warm: Recipe | None) -> tuple:
    """One sweep on a fresh local Ray with ``args.ray_workers`` 1-CPU workers; with ``warm``, every worker
    first loads the model and datasets (as the in-process runs do before they are timed)."""
    # Ray runs its workers at niceness 15 by default (they yield to everything else on a node); the
    # in-process runs they are compared with run at 0, so on a shared machine they would lose to others.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ex = RayExecutor("local", num_cpus=args.ray_workers, finetune_cpus=1)
    t0 = time.perf_counter()
    ray = ex.connect()
    note = f"Ray start {time.perf_counter() - t0:.1f} s"
    try:
        if warm is not None:
            t0 = time.perf_counter()
            task = ray.remote(warm_worker).options(num_cpus=1)
            pids = ray.get(
                [task.remote(model_id, warm.to_json(), args.eval, args.budget) for _ in range(args.ray_workers)]
            )
            note += f", worker warm-up {time.perf_counter() - t0:.1f} s on {len(set(pids))} worker(s)"
        wall, df = _timed_sweep(model_id, recipes, args, executor=ex)
    finally:
        ex.close()
    state = "warm" if warm is not None else "cold"
    return f"Ray, {args.ray_workers} local workers x 1 CPU, {state}", wall, df, note + " (not in wall)"


def ray_compare(model_id: str, recipes: list[Recipe], sweep: str, args: argparse.Namespace) -> list[dict]:
    """In-process (1 and 2 threads, a fresh Workbench each) vs Ray with ``args.ray_workers`` 1-CPU workers."""
    warm = [r for r in recipes if r.finetune is not None][:1] or recipes[:1]
    Workbench(model_id).evaluate(warm[0], MeasureSettings(mode=args.eval, budget_s=args.budget))  # datasets into memory
    runs = []
    for threads in (1, 2):
        configure_threads(threads)
        wall, df = _timed_sweep(model_id, recipes, args, workbench=Workbench(model_id))
        runs.append((f"in-process, {threads} thread(s)", wall, df, ""))
    configure_threads(1)
    for warm_workers in (False, True):
        runs.append(ray_run(model_id, recipes, args, warm[0] if warm_workers else None))
    base_wall, base = runs[0][1], runs[0][2]
    rows = []
    for method, wall, df, note in runs:
        # on an idle machine the busiest process (a worker, or the one in-process thread) bounds the wall time
        one_process = "2 thread(s)" in method
        projected = None if one_process else base.attrs["cpu_s"] / df.attrs["busiest_s"]
        where = ", ".join(sorted({f"{h} ({t} thr)" for h, t in zip(df["host"], df["latency_threads"])}))
        rows.append(
            {
                "model": model_id,
                "sweep": sweep,
                "method": method,
                "configs": len(df),
                "wall_s": wall,
                "per_min": 60 * len(df) / wall,
                "speedup": base_wall / wall,
                "acc_diff": float((df["accuracy"] - base["accuracy"]).abs().max()),
                "noisy": int(df["latency_noisy"].sum()),
                "cpu_s": df.attrs["cpu_s"],
                "projected": projected,
                "where": where,
                "note": note,
            }
        )
    return rows


def print_ray_table(rows: list[dict], args: argparse.Namespace) -> None:
    env = environment()
    print(
        f"\nRay vs in-process: eval `{args.eval}`, latency batch {args.batch}, budget {args.budget} s; fine-tune = "
        f"1 epoch on {args.finetune_samples:,} training images for every pruned point"
    )
    print(
        f"CPU: {env['CPU']}, {env['cores']} cores, {env['CPU flags (kernels)']}, torch {env['torch']}; "
        f"load average {env['load average (1/5/15 min)']} (after the runs)\n"
    )
    print(
        "| model | sweep | method | configs | wall (s) | configs/min | vs in-process 1 thread | "
        "max abs. accuracy diff | noisy latencies | CPU s (all procs) | idle estimate | measured on | note |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        estimate = "-" if r["projected"] is None else f"{r['projected']:.2f}x"
        print(
            f"| {r['model']} | {r['sweep']} | {r['method']} | {r['configs']} | {r['wall_s']:.1f} | "
            f"{r['per_min']:.1f} | {r['speedup']:.2f}x | {r['acc_diff']:.4f} | {r['noisy']} | {r['cpu_s']:.1f} | "
            f"{estimate} | {r['where']} | {r['note']} |"
        )
    print(
        "\nidle estimate: in-process 1-thread CPU seconds / the CPU seconds of the busiest process of "
        "the run (a Ray worker, or the in-process thread); what the speed-up would be if every process had a "
        "core to itself. Not given for 2 threads (one process, two threads)."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma list (default: lenet5-mnist, + resnet20-cifar10 with data)")
    p.add_argument("--kinds", default="unstructured")
    p.add_argument("--sparsities", default="0,0.25,0.5,0.75,0.9")
    p.add_argument("--bits", default="32,8,4")
    p.add_argument("--criterion", default="l1")
    p.add_argument("--eval", choices=("quick", "full"), default="quick")
    p.add_argument("--batch", type=int, default=1, help="latency batch")
    p.add_argument("--budget", type=float, default=0.3, help="seconds per latency measurement")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ray-workers", type=int, default=2, help="local Ray workers for the Ray rows (0: no Ray rows)")
    p.add_argument("--ray-only", action="store_true", help="only the Ray vs in-process table")
    p.add_argument("--finetune-samples", type=int, default=2000, help="training images of the fine-tune sweep")
    args = p.parse_args()
    threads = configure_threads(args.threads)
    ids = (
        args.models.split(",")
        if args.models
        else ["lenet5-mnist"] + (["resnet20-cifar10"] if os.environ.get("COMPRESS_DATA_DIR") else [])
    )
    recipes = grid(
        args.kinds.split(","),
        [float(s) for s in args.sparsities.split(",")],
        [int(b) for b in args.bits.split(",")],
        criterion=args.criterion,
    )
    if args.ray_workers and (missing := ray_missing()) is None:
        tuned = [replace(r, finetune=finetune_spec(args)) if r.prune.active else r for r in recipes]
        ray_rows = [
            row
            for model_id in ids
            for sweep, rs in (("quick eval", recipes), ("+ 1-epoch fine-tune", tuned))
            for row in ray_compare(model_id, rs, sweep, args)
        ]
        print_ray_table(ray_rows, args)
    elif args.ray_workers:
        print(f"(no Ray rows: {missing})")
    if args.ray_only:
        return
    configure_threads(args.threads)
    rows = [row for model_id in ids for row in bench(model_id, recipes, args.eval, args.batch, args.budget)]
    print(
        f"Sweep of {len(recipes)} configs ({args.kinds} x sparsities {args.sparsities} x bits {args.bits}, "
        f"{args.criterion}), eval `{args.eval}`, latency batch {args.batch}, budget {args.budget} s, "
        f"{threads} thread(s)\n"
    )
    print(
        "| model | method | configs | wall (s) | configs/min | vs naive | max abs. accuracy diff | "
        "compress / eval / size / latency (s) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            f"| {r['model']} | {r['method']} | {r['configs']} | {r['wall_s']:.2f} | {r['per_min']:.0f} | "
            f"{r['speedup']:.1f}x | {r['acc_diff']:.4f} | {r['phases']} |"
        )


if __name__ == "__main__":
    main()
