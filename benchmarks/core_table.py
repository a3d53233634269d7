"""Dense accuracy of every model, and the core compression table (issue: compress_core).

Prints markdown tables:
1. dense top-1 of every model on its full test set, next to the reference;
2. for each model in --models: dense, 50 % / 90 % global L1 unstructured, 8/4/2/1-bit weights,
   with accuracy (95 % CI), non-zero params, sizes and latency;
3. wall time of one `python -m compress_core evaluate` of the default model (a fresh process).

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/core_table.py [--eval full] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import compress_core  # noqa: F401
from compress_core import models
from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.base.threads import configure_threads
from compress_core.bench.workbench import Workbench

RECIPES = [
    Recipe(),
    Recipe(PruneSpec("unstructured", "l1", "global", 0.5)),
    Recipe(PruneSpec("unstructured", "l1", "global", 0.9)),
    Recipe(quant=QuantSpec(8)),
    Recipe(quant=QuantSpec(4)),
    Recipe(quant=QuantSpec(2)),
    Recipe(quant=QuantSpec(1)),
]


def dense_table(mode: str) -> None:
    print("| model | eval set | n | top-1 (95 % CI) | reference | source |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for model_id, spec in models.REGISTRY.items():
        if spec.dataset == "imagefolder":  # ImageNet classifiers: evaluated on a user's image folder
            continue
        if not models.available(model_id):
            print(f"| {model_id} | (weights not available) | | | | |")
            continue
        r = Workbench(model_id).evaluate(Recipe(), MeasureSettings(mode=mode, latency=False))
        ref = f"{spec.reference_accuracy:.2%}" if spec.reference_accuracy else "-"
        print(
            f"| {model_id} | {r.eval_set} | {r.eval_samples:,} | {r.accuracy:.2%} "
            f"({r.accuracy_ci_low:.2%}–{r.accuracy_ci_high:.2%}) | {ref} | {spec.reference_source} |"
        )


def recipe_table(model_id: str, mode: str, batch: int, threads: int, budget: float) -> None:
    wb = Workbench(model_id)
    print(f"\n**{model_id}** — eval `{mode}`, latency batch {batch}, {threads} thread(s)\n")
    print(
        "| recipe | top-1 (95 % CI) | agreement | non-zero / total params | file size (B) | size method | "
        "vs dense fp32 | latency p50 (ms) | kernels |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
    for recipe in RECIPES:
        r = wb.evaluate(recipe, MeasureSettings(mode=mode, batch=batch, threads=threads, budget_s=budget))
        print(
            f"| {r.recipe_label} | {r.accuracy:.2%} ({r.accuracy_ci_low:.2%}–{r.accuracy_ci_high:.2%}) | "
            f"{r.agreement:.2%} | {r.params_nonzero:,} / {r.params_total:,} | {r.size_bytes:,} | {r.size_method} | "
            f"{r.compression_ratio:.1f}× | {r.latency_ms_p50:.3f} | {r.latency_kernels} |"
        )
    print(f"\ndense fp32 state_dict: {wb.dense_facts()['size_bytes']:,} B")


def cli_wall_time(repeats: int = 3) -> None:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "compress_core", "evaluate", "--json"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        times.append(time.perf_counter() - t0)
    times.sort()
    print(
        f"\n`python -m compress_core evaluate --json` (lenet5-mnist, quick eval, fresh process): "
        f"median {times[len(times) // 2]:.2f} s over {repeats} runs (min {times[0]:.2f} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lenet5-mnist,resnet20-cifar10")
    ap.add_argument("--eval", default="full", choices=("quick", "full"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=1.0)
    args = ap.parse_args()
    configure_threads(args.threads)
    print(f"# Core table — torch threads {args.threads}, {time.strftime('%Y-%m-%d')}\n")
    dense_table(args.eval)
    for model_id in args.models.split(","):
        if models.available(model_id):
            recipe_table(model_id, args.eval, args.batch, args.threads, args.budget)
    cli_wall_time()


if __name__ == "__main__":
    main()
