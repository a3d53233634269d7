"""What the compressed model forgets (issue "What the compressed model forgets", item 5).

For each model, on its full test set, with the model's default recovery: unstructured (global L1) 50/70/90 %,
structured (per layer, residual streams kept) 30/50 %, 3-bit weights and real int8 kernels. Per recipe: top-1,
agreement with the dense model, flips right→wrong / wrong→right, mean KL(dense || compressed), the classes
significantly hurt (``Forgets.classes_hurt``: the class's 95 % Newcombe interval of change lies below the overall
change), and at the end the count of images that flip under more than half of the recipes (approximate:
``study.forgets_across``).

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/forgets.py [--models resnet20-cifar10 resnet56-cifar10]
"""

from __future__ import annotations

import argparse
import sys
import time

import compress_core  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)

# isort: split
from compress_core.base import machine
from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.forgets import Forgets
from compress_core.bench.workbench import Workbench
from compress_core.engine import recover
from compress_core.study.forgets_across import flip_exemplars

RECIPES = [
    Recipe(PruneSpec("unstructured", "l1", "global", 0.5)),
    Recipe(PruneSpec("unstructured", "l1", "global", 0.7)),
    Recipe(PruneSpec("unstructured", "l1", "global", 0.9)),
    Recipe(PruneSpec("structured", "l1", "layer", 0.3, residual=False)),
    Recipe(PruneSpec("structured", "l1", "layer", 0.5, residual=False)),
    Recipe(quant=QuantSpec(3)),
    Recipe(quant=QuantSpec(8, int8=True)),
]


def model_table(model_id: str) -> None:
    wb = Workbench(model_id)
    level = recover.default_level(wb.model)
    settings = MeasureSettings(mode="full", latency=False)
    dense = wb.evaluate(Recipe(), settings)
    print(f"\n**{model_id}**: dense top-1 {dense.accuracy:.2%} on {dense.eval_samples:,} images; recovery `{level}`\n")
    print(
        "| recipe | top-1 | change (pp) | agreement | right→wrong | wrong→right | mean KL (nats) | classes hurt | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    results = []
    for recipe in RECIPES:
        t0 = time.perf_counter()
        r = wb.evaluate(recipe.with_recovery(level), settings, oneshot=False)
        secs = time.perf_counter() - t0
        assert r.forgets is not None
        f = Forgets.from_dict(r.forgets)
        results.append(r.to_dict())
        hurt = f.classes_hurt()
        print(
            f"| {r.recipe_label} | {r.accuracy:.2%} | {100 * (r.accuracy - dense.accuracy):+.2f} | {f.agreement:.2%} "
            f"| {f.flips_right_to_wrong} ({f.flip_rate_right_to_wrong:.2%}) "
            f"| {f.flips_wrong_to_right} ({f.flip_rate_wrong_to_right:.2%}) | {f.mean_kl:.4f} "
            f"| {len(hurt)} {hurt if hurt else ''} | {secs:.0f} |",
            flush=True,
        )
    ex = flip_exemplars(results)
    bound = f" (a lower bound: {len(ex.capped_results)} results had only capped lists)" if ex.lower_bound else ""
    print(
        f"\nImages flipping under more than half of the {ex.results} recipes (approximate exemplars, "
        f"`study.forgets_across`): **{len(ex)}**{bound}; of them right→wrong in every recipe: "
        f"{sum(r['right_to_wrong'] == ex.results for r in ex.rows)}."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet20-cifar10"])
    args = ap.parse_args()
    print(f"`{' '.join(['python', *sys.argv])}`\n")
    print(machine.machine_line() + " (at start)")
    for model_id in args.models:
        model_table(model_id)
    print("\n" + machine.machine_line() + " (at end)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
