"""Deep Compression on the bundled LeNets: prune (AGP) + fine-tune (with distillation) + quantize,
measured as the real artefact file against the dense fp32 state_dict, accuracy on the test set.

Anchor: Han et al. 2016 (Deep Compression), LeNet-300-100 40x and LeNet-5 39x at no accuracy loss
(their numbers include Huffman coding and were trained on the full 60k MNIST training set; ours are
trained on 4,000 digits). Our target: >= 50x with <= 0.2 pp accuracy drop.

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/deep_compression.py [--epochs 20]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import compress_core  # noqa: F401
from compress_core.pipeline import Workbench
from compress_core.recipe import FinetuneSpec, PruneSpec, QuantSpec, Recipe
from compress_core.runtime import configure_threads

ANCHOR = {"lenet300-mnist": "40× (Han et al. 2016)", "lenet5-mnist": "39× (Han et al. 2016)"}


def recipes(sparsity: float, bits: int, epochs: float) -> list[tuple[str, Recipe]]:
    prune = PruneSpec("unstructured", "l1", "global", sparsity, skip=())
    ft = FinetuneSpec(epochs=epochs, lr=0.01, schedule="agp", steps=4, distill=True)
    quant = QuantSpec(bits, "asymmetric", "per_channel")
    return [
        ("prune only (one-shot)", Recipe(prune)),
        ("prune + AGP fine-tune + KD", Recipe(prune, finetune=ft)),
        (f"prune + fine-tune + {bits}-bit", Recipe(prune, quant, finetune=ft)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", default="full", choices=("quick", "full"))
    ap.add_argument("--plan", default="lenet300-mnist:0.95:4,lenet5-mnist:0.95:4",
                    help="comma list of model:sparsity:bits")
    args = ap.parse_args()
    configure_threads(args.threads)
    print(f"# Deep Compression — {time.strftime('%Y-%m-%d')}, {args.threads} threads, "
          f"fine-tune {args.epochs:g} epochs over the 4,000-digit train split\n")
    print("| model | step | test top-1 (95 % CI) | Δ vs dense (pp) | non-zero params | file (B) | "
          "vs dense fp32 | anchor | wall (s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for item in args.plan.split(","):
        model_id, sparsity, bits = item.split(":")
        wb = Workbench(model_id)
        dense = wb.evaluate(Recipe(), mode=args.eval, measure_latency=False)
        print(f"| {model_id} | dense fp32 | {dense.accuracy:.2%} ({dense.accuracy_ci_low:.2%}–"
              f"{dense.accuracy_ci_high:.2%}) | – | {dense.params_nonzero:,} | {dense.dense_size_bytes:,} | 1.0× | "
              f"{ANCHOR[model_id]} | – |")
        for name, recipe in recipes(float(sparsity), int(bits), args.epochs):
            t0 = time.perf_counter()
            r = wb.evaluate(recipe, mode=args.eval, measure_latency=False)
            wall = time.perf_counter() - t0
            print(f"| {model_id} | {name} ({float(sparsity):.0%}) | {r.accuracy:.2%} ({r.accuracy_ci_low:.2%}–"
                  f"{r.accuracy_ci_high:.2%}) | {100 * (r.accuracy - dense.accuracy):+.2f} | {r.params_nonzero:,} | "
                  f"{r.size_bytes:,} | {r.compression_ratio:.1f}× | | {wall:.1f} |", flush=True)
    print(f"\n_Eval set {dense.eval_set} ({dense.eval_samples:,} images); file = PruneScope artefact (.psz), "
          "dense = torch.save fp32 state_dict; quantization is applied after fine-tuning (no quantization-aware "
          "training)._")


if __name__ == "__main__":
    main()
