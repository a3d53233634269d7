"""Real speed and real size (issue "Real speed and real size"): what each kind of compression buys on
stock CPU kernels.

Prints markdown tables for one model at each batch size:
1. dense fp32 vs unstructured 90 % (masked weights) vs structured 50 % (channels removed, residual
   streams included) vs int8 kernels vs structured 50 % + int8: accuracy (95 % CI), params, MACs,
   artefact size, latency p50 and speed-up over dense, all from ``Workbench.evaluate``;
2. memory format: the same models with contiguous (NCHW) vs channels_last inputs (and fp32 weights),
   timed in alternating rounds (best of ``--rounds``).

Latency is single-threaded by default and depends on what else runs on the machine: the header
prints the load average before and after. Run on a quiet machine for numbers worth quoting.

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/real_speed.py [--eval full] [--threads 1]
       python benchmarks/real_speed.py --eval quick --batches 1 --budget 0.2     (a quick check)
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time

import compress_core  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)

# isort: split
import torch

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Compressed, Result, Workbench
from compress_core.engine import measure


def recipes(structured: float, unstructured: float, criterion: str) -> list[tuple[str, Recipe]]:
    int8 = QuantSpec(bits=8, int8=True)
    pruned = PruneSpec("structured", criterion, "layer", structured)
    return [
        ("dense fp32", Recipe()),
        (f"unstructured {unstructured:.0%}", Recipe(PruneSpec("unstructured", criterion, "global", unstructured))),
        (f"structured {structured:.0%}", Recipe(pruned)),
        ("int8", Recipe(quant=int8)),
        (f"structured {structured:.0%} + int8", Recipe(pruned, int8)),
    ]


def fmt_row(name: str, r: Result) -> str:
    acc = f"{r.accuracy:.2%} [{r.accuracy_ci_low:.1%}, {r.accuracy_ci_high:.1%}]"
    return (
        f"| {name} | {r.latency_kernels} | {acc} | {r.params_nonzero:,} / {r.params_total:,} | "
        f"{r.macs / 1e6:.1f} M | {r.size_bytes:,} | {r.latency_ms_p50:.2f} ± {r.latency_ms_iqr:.2f} | "
        f"{r.speedup:.2f}× |"
    )


def speed_table(wb: Workbench, comps: dict[str, Compressed], batch: int, args: argparse.Namespace) -> None:
    print(f"\n### {wb.model_id}, batch {batch}, {args.threads} thread(s), eval {args.eval}\n")
    print(
        "| recipe | kernels | accuracy [95 % CI] | non-zero / total params | MACs | size (bytes) "
        "| latency p50 ± IQR (ms) | speed-up |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, comp in comps.items():
        r = wb.evaluate(
            comp.recipe,
            MeasureSettings(mode=args.eval, batch=batch, threads=args.threads, budget_s=args.budget),
            compressed=comp,
        )
        print(fmt_row(name, r), flush=True)


def memory_format_table(
    wb: Workbench, comps: dict[str, Compressed], batches: list[int], args: argparse.Namespace
) -> None:
    print(f"\n### memory format: contiguous vs channels_last, {args.threads} thread(s)\n")
    print("| recipe | batch | contiguous p50 (ms) | channels_last p50 (ms) | ratio |")
    print("|---|---:|---:|---:|---:|")
    cl = torch.channels_last
    for name, comp in comps.items():
        if comp.recipe.prune.kind == "unstructured":
            continue  # same kernels as dense
        model_cl = comp.model if comp.kernels.startswith("int8") else copy.deepcopy(comp.model).to(memory_format=cl)
        for b in batches:
            t_c = t_cl = float("inf")
            for _ in range(args.rounds):  # alternate the two and keep the best: robust to other load
                t_c = min(t_c, measure.latency(comp.model, wb.spec.input_shape, b, args.threads, args.budget).ms_p50)
                t_cl = min(
                    t_cl,
                    measure.latency(
                        model_cl, wb.spec.input_shape, b, args.threads, args.budget, memory_format=cl
                    ).ms_p50,
                )
            print(f"| {name} | {b} | {t_c:.2f} | {t_cl:.2f} | {t_c / t_cl:.2f}× |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20-cifar10")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 128])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval", choices=("quick", "full"), default="full")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timing per latency measurement")
    ap.add_argument("--structured", type=float, default=0.5, help="structured sparsity (fraction of channels)")
    ap.add_argument("--unstructured", type=float, default=0.9, help="unstructured sparsity (fraction of weights)")
    ap.add_argument("--criterion", default="l1")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds in the memory-format table")
    ap.add_argument("--no-memory-format", action="store_true", help="skip the channels_last table")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"quantized engine {torch.backends.quantized.engine}, load average before {os.getloadavg()[0]:.2f}"
    )
    wb = Workbench(args.model)
    comps = {}
    for name, recipe in recipes(args.structured, args.unstructured, args.criterion):
        t0 = time.perf_counter()
        comps[name] = wb.compress(recipe)
        print(f"- {name}: compressed in {time.perf_counter() - t0:.1f} s", flush=True)
    for batch in args.batches:
        speed_table(wb, comps, batch, args)
    if not args.no_memory_format:
        memory_format_table(wb, comps, args.batches, args)
    print(
        f"\nload average after {os.getloadavg()[0]:.2f}; structured pruning keeps the first conv and the "
        "classifier's outputs (skip first/last) and prunes residual streams stage by stage"
    )


if __name__ == "__main__":
    main()
