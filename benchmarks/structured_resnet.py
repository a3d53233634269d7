"""Structured pruning + fine-tuning of a CIFAR ResNet: measured CPU speed-up and test accuracy.

Anchors: Li et al. 2017 (ResNet-56-pruned-B: 27.6 % fewer FLOPs, -0.02 pp) and Torch-Pruning
(ResNet-56: 2.13x fewer MACs, +0.24 pp), both after full GPU fine-tuning (~40-160 epochs).
Our target: >= 2.5x measured speed-up at <= 0.5 pp drop. CPU fine-tuning is slow, so the schedule
here is shortened (see the table's fine-tune column) and the table says so.

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/structured_resnet.py --model resnet56-cifar10 \
           --sparsities 0.3,0.5 --epochs 1 --samples 20000
"""

from __future__ import annotations

import argparse
import time

import compress_core  # noqa: F401
from compress_core.base.recipe import FinetuneSpec, PruneSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.base.threads import configure_threads
from compress_core.bench.workbench import Workbench


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet56-cifar10")
    ap.add_argument("--sparsities", default="0.3,0.5")
    ap.add_argument("--criterion", default="l1")
    ap.add_argument(
        "--scope",
        default="layer",
        choices=("layer", "global"),
        help="layer: every group loses the same fraction (even shapes); global: one ranking",
    )
    ap.add_argument("--inner-only", action="store_true", help="keep residual streams (Li et al. 2017 style)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--samples", type=int, default=20_000, help="training images per epoch")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2, help="threads for fine-tuning and evaluation")
    ap.add_argument("--latency-threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=2.0)
    return ap.parse_args()


def _recipes(args: argparse.Namespace) -> list[tuple[str, Recipe]]:
    """(fine-tune label, recipe): dense, then per sparsity one-shot and fine-tuned."""
    rows: list[tuple[str, Recipe]] = [("dense", Recipe())]
    for s in (float(x) for x in args.sparsities.split(",")):
        prune = PruneSpec("structured", args.criterion, args.scope, s, residual=not args.inner_only)
        rows.append(("one-shot", Recipe(prune)))
        ft = FinetuneSpec(epochs=args.epochs, lr=args.lr, batch_size=64, distill=True, max_samples=args.samples)
        rows.append((f"{args.epochs:g} ep × {args.samples // 1000}k", Recipe(prune, finetune=ft)))
    return rows


def main() -> None:
    args = _args()
    configure_threads(args.threads)
    wb = Workbench(args.model)
    print(f"# Structured pruning + fine-tuning, {args.model} — {time.strftime('%Y-%m-%d')}\n")
    print(
        f"Fine-tune: {args.epochs:g} epoch(s) × {args.samples:,} CIFAR-10 training images, SGD lr {args.lr} "
        f"cosine, distillation from the dense model (T=4, α=0.7), crop+flip. Latency: "
        f"{args.latency_threads} thread(s), torch.utils.benchmark median. Accuracy: full 10k test set.\n"
    )
    print(
        "| recipe | fine-tune | top-1 (95 % CI) | Δ vs dense (pp) | params | MACs | MAC reduction | "
        "latency b1 (ms) | speed-up b1 | latency b128 (ms) | speed-up b128 | wall (s) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    dense = None
    for tuning, recipe in _recipes(args):
        t0 = time.perf_counter()
        comp = wb.compress(recipe)
        b1 = wb.evaluate(
            recipe,
            MeasureSettings(mode="full", batch=1, threads=args.latency_threads, budget_s=args.budget),
            compressed=comp,
        )
        b128 = wb.evaluate(
            recipe,
            MeasureSettings(mode="full", batch=128, threads=args.latency_threads, budget_s=args.budget),
            compressed=comp,
        )
        wall = time.perf_counter() - t0
        dense = dense or b1
        print(
            f"| {recipe.label()} | {tuning if recipe.finetune or recipe.prune.active else '–'} | "
            f"{b1.accuracy:.2%} ({b1.accuracy_ci_low:.2%}–{b1.accuracy_ci_high:.2%}) | "
            f"{100 * (b1.accuracy - dense.accuracy):+.2f} | {b1.params_total:,} | {b1.macs / 1e6:.1f} M | "
            f"{b1.dense_macs / b1.macs:.2f}× | {b1.latency_ms_p50:.2f} | {b1.speedup:.2f}× | "
            f"{b128.latency_ms_p50:.1f} | {b128.speedup:.2f}× | {wall:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
