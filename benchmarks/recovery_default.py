"""Explore's recovery default and structured defaults (issue "Accuracy you would ship", item 3).

Part 1, the recovery default: for each model and recovery level, the wall time of a slider move
that misses every cache, as the dashboard makes it (``Workbench.evaluate`` on the quick evaluation,
batch-1 paired timing with the dashboard's 0.2 s budget), over the slider stops 20-55 % of both
pruning kinds; median and range, and the accuracy it shows. The default is the strongest level whose
median stays at about 1.5 s (``compress_core.engine.recover.default_level`` encodes the choice).

Part 2, the structured defaults: accuracy of structured pruning at 30 % and 50 % for each scope and
residual-stream setting, after the model's default recovery, quick evaluation.

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/recovery_default.py [--models ID ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import compress_core  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)

# isort: split
from compress_core.base import machine
from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.engine import recover

STOPS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55)
BUDGET_S = 0.2  # pages/ui/cache.LATENCY_BUDGET_S


def header() -> None:
    print(f"`{' '.join(['python', *sys.argv])}`\n")
    print(machine.machine_line() + " (at start)\n")


def slider_moves(model_id: str) -> None:
    wb = Workbench(model_id)
    wb.evaluate(Recipe(), MeasureSettings(mode="quick", budget_s=BUDGET_S))
    levels = recover.usable_levels(wb.model)
    print(f"**{wb.spec.name}** (default: `{recover.default_level(wb.model)}`)\n")
    print("| recovery | kind (scope) | move p50 s | range s | accuracy at 30 % | at 50 % |")
    print("|---|---|---:|---:|---:|---:|")
    for level in levels:
        for kind, scope, residual in (("unstructured", "global", True), ("structured", "layer", False)):
            secs, acc = [], {}
            for s in STOPS:
                r = Recipe(prune=PruneSpec(kind=kind, scope=scope, sparsity=s, residual=residual), recovery=level)
                t0 = time.perf_counter()
                res = wb.evaluate(r, MeasureSettings(mode="quick", budget_s=BUDGET_S))
                secs.append(time.perf_counter() - t0)
                acc[s] = res.accuracy
            what = kind if kind == "unstructured" else "structured (layer, inner)"
            print(
                f"| {level} | {what} | {statistics.median(secs):.2f} | {min(secs):.2f}-{max(secs):.2f} | "
                f"{acc[0.3]:.1%} | {acc[0.5]:.1%} |",
                flush=True,
            )
    print()


def structured_defaults(model_id: str) -> None:
    wb = Workbench(model_id)
    level = recover.default_level(wb.model)
    print(f"**{wb.spec.name}**, structured, recovery `{level}`, quick evaluation (1,000 images)\n")
    print("| scope | residual streams | 30 % | 50 % | params left at 50 % |")
    print("|---|---|---:|---:|---:|")
    residuals = (True, False) if recover.batchnorms(wb.model) else (True,)
    for scope in ("global", "layer"):
        for residual in residuals:
            cells = []
            for s in (0.3, 0.5):
                p = PruneSpec(kind="structured", scope=scope, sparsity=s, residual=residual)
                res = wb.evaluate(Recipe(prune=p, recovery=level), MeasureSettings(mode="quick", latency=False))
                cells.append(res)
            kept = "pruned" if residual else "kept (inner only)"
            print(
                f"| {scope} | {kept} | {cells[0].accuracy:.1%} | {cells[1].accuracy:.1%} | "
                f"{cells[1].params_nonzero:,} |",
                flush=True,
            )
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet20-cifar10", "lenet5-mnist"])
    args = ap.parse_args()
    os.environ.setdefault("COMPRESS_DATA_DIR", "../shared/data")
    header()
    print("Slider moves that miss every cache (quick evaluation, batch 1, 0.2 s paired timing):\n")
    for m in args.models:
        slider_moves(m)
    print("Structured defaults:\n")
    for m in args.models:
        structured_defaults(m)
    print(f"load average at end: {machine.environment()['load average (1/5/15 min)']}")


if __name__ == "__main__":
    main()
