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

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/sweep_throughput.py [--eval full] [--threads 1]
       python benchmarks/sweep_throughput.py --sparsities 0,0.5 --bits 32 --budget 0.02   (a quick check)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

import compress_core  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
from compress_core import models
from compress_core.pipeline import Workbench
from compress_core.recipe import Recipe
from compress_core.runtime import configure_threads
from compress_core.store import ResultStore
from compress_core.sweep import grid, run_sweep

PHASES = ("compress_s", "eval_s", "size_s", "latency_s")


def naive_loop(model_id: str, recipes: list[Recipe], mode: str, batch: int, budget: float) -> tuple[list, list]:
    accuracies, seconds = [], []
    for recipe in recipes:
        wb = Workbench(model_id, model=models.load(model_id))  # nothing cached between configs
        r = wb.evaluate(recipe, mode=mode, latency_batch=batch, latency_budget_s=budget)
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
    Workbench(model_id).evaluate(Recipe(), mode=mode, latency_batch=batch, latency_budget_s=budget)  # warm-up
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
