"""Deep Compression on the bundled LeNets: prune (AGP) + fine-tune (with distillation) + quantize,
measured as the real artefact file against the dense fp32 state_dict, accuracy on the test set.

Anchor: Han et al. 2016 (Deep Compression), LeNet-300-100 40x and LeNet-5 39x at no accuracy loss
(their numbers include Huffman coding and were trained on the full 60k MNIST training set; ours are
trained on 4,000 digits). Targets: LeNet-300-100 >= 50x at <= 0.2 pp drop, LeNet-5 >= 45x at <= 0.3 pp.

Rows per model: dense; prune + AGP fine-tune + KD; that + k-bit asymmetric per-channel weights (uniform
levels, post-training); that + k-means weight sharing (2^k shared values per layer, post-training);
and Deep Compression's pipeline: the k-means model with its codebooks fine-tuned (``finetune_codebooks_``).
The k-means rows start from the same pruned + fine-tuned model as the asymmetric ones and, as the stages
will (``finetune.codebook_spec``), tune the codebooks for ``--codebook-share`` x ``--epochs`` more epochs.
"file" is the artefact with entropy coding of the k-means indices (Huffman, per tensor, where it
deflates smaller); "packed" without it.

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/deep_compression.py --eval full [--epochs 30]
Prints a markdown table and a verdict per model.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from pathlib import Path

import compress_core  # noqa: F401
from compress_core.base.recipe import FinetuneSpec, PruneSpec, QuantSpec, Recipe
from compress_core.base.records import Compressed, Result
from compress_core.base.settings import MeasureSettings
from compress_core.base.threads import configure_threads
from compress_core.bench.workbench import Workbench
from compress_core.engine.finetune import CODEBOOK_SHARE, codebook_spec, finetune_codebooks_
from compress_core.engine.stages import quantize_stage
from compress_core.files.artifact import artifact_bytes

ANCHOR = {"lenet300-mnist": "40× (Han et al. 2016)", "lenet5-mnist": "39× (Han et al. 2016)"}
TARGET = {"lenet300-mnist": (50.0, 0.2), "lenet5-mnist": (45.0, 0.3)}  # (× smaller, max pp drop)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def row(model_id: str, step: str, r: Result, dense: Result, packed: int | str, wall: float | str) -> str:
    return (
        f"| {model_id} | {step} | {r.accuracy:.2%} ({r.accuracy_ci_low:.2%}–{r.accuracy_ci_high:.2%}) | "
        f"{100 * (r.accuracy - dense.accuracy):+.2f} | {r.params_nonzero:,} | {r.size_bytes:,} | "
        f"{packed if isinstance(packed, str) else f'{packed:,}'} | {r.compression_ratio:.1f}× | "
        f"{wall if isinstance(wall, str) else f'{wall:.1f}'} |"
    )


def kmeans_rows(
    wb: Workbench, prune: PruneSpec, ft: FinetuneSpec, bits: int, share: float, mode: str, dense: Result
) -> tuple[list[str], Result]:
    """k-means after fine-tuning (post-training), then with its codebooks fine-tuned."""
    after = codebook_spec(ft, share)
    quant = QuantSpec(bits, "kmeans", "per_tensor")
    recipe = Recipe(prune, quant, finetune=ft)
    tuned = wb.compress(Recipe(prune, finetune=ft))  # the pruned + fine-tuned float model (cached)
    fm = copy.deepcopy(tuned.float_model)
    comp = Compressed(model=fm, float_model=fm, recipe=recipe, masks=dict(tuned.masks), simulated=list(tuned.simulated))
    t0 = time.perf_counter()
    quantize_stage(comp, quant)
    ptq = wb.evaluate(recipe, MeasureSettings(mode=mode, latency=False), compressed=comp)
    lines = [
        row(
            wb.model_id,
            f"… + {bits}-bit k-means per-tensor ({prune.sparsity:.0%})",
            ptq,
            dense,
            len(artifact_bytes(comp, wb.model_id, entropy=False)),
            time.perf_counter() - t0,
        )
    ]
    t0 = time.perf_counter()
    finetune_codebooks_(comp.float_model, comp.qcodes, after, wb.spec.dataset, comp.masks, wb.model)
    final = wb.evaluate(recipe, MeasureSettings(mode=mode, latency=False), compressed=comp)
    lines.append(
        row(
            wb.model_id,
            f"… + {after.epochs:g} ep codebook fine-tune (Deep Compression)",
            final,
            dense,
            len(artifact_bytes(comp, wb.model_id, entropy=False)),
            time.perf_counter() - t0,
        )
    )
    return lines, final


def verdict(label: str, model_id: str, r: Result, dense: Result) -> str:
    ratio, drop = TARGET[model_id]
    got_drop = 100 * (dense.accuracy - r.accuracy)
    misses = []
    if r.compression_ratio < ratio:
        need = dense.dense_size_bytes / ratio
        misses.append(f"size {r.compression_ratio:.1f}× < {ratio:g}× (needs {r.size_bytes - need:,.0f} B less)")
    if got_drop > drop + 1e-9:
        misses.append(f"drop {got_drop:.2f} pp > {drop:g} pp (by {got_drop - drop:.2f} pp)")
    state = "**met**" if not misses else "**missed**: " + "; ".join(misses)
    return (
        f"- {label}: {r.compression_ratio:.1f}× at {-got_drop:+.2f} pp against ≥ {ratio:g}× at ≤ {drop:g} pp: {state}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=30)
    ap.add_argument("--codebook-share", type=float, default=CODEBOOK_SHARE)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", default="full", choices=("quick", "full"))
    ap.add_argument(
        "--plan",
        default="lenet300-mnist:0.94:3/4,lenet5-mnist:0.95:3/4",
        help="comma list of model:sparsity:bits[/bits...]",
    )
    args = ap.parse_args()
    configure_threads(args.threads)
    print(f"CPU: {cpu_model()}\n")
    print(
        f"# Deep Compression — {time.strftime('%Y-%m-%d')}, {args.threads} threads, fine-tune {args.epochs:g} "
        f"epochs over the 4,000-digit train split, then {args.codebook_share * args.epochs:g} on the k-means "
        "codebooks\n"
    )
    print(
        "| model | step | test top-1 (95 % CI) | Δ vs dense (pp) | non-zero params | file (B) | packed (B) | "
        "vs dense fp32 | wall (s) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    verdicts = []
    for item in args.plan.split(","):
        model_id, sparsity, bits_list = item.split(":")
        wb = Workbench(model_id)
        dense = wb.evaluate(Recipe(), MeasureSettings(mode=args.eval, latency=False))
        print(
            f"| {model_id} | dense fp32 (anchor {ANCHOR[model_id]}) | {dense.accuracy:.2%} "
            f"({dense.accuracy_ci_low:.2%}–{dense.accuracy_ci_high:.2%}) | – | {dense.params_nonzero:,} | "
            f"{dense.dense_size_bytes:,} | – | 1.0× | – |"
        )
        prune = PruneSpec("unstructured", "l1", "global", float(sparsity), skip=())
        ft = FinetuneSpec(epochs=args.epochs, lr=0.01, schedule="agp", steps=4, distill=True)
        steps = [
            (f"prune only, one-shot ({prune.sparsity:.0%})", Recipe(prune)),
            (f"prune + {ft.epochs:g} ep AGP fine-tune + KD", Recipe(prune, finetune=ft)),
        ]
        steps += [
            (f"… + {b}-bit asymmetric per-channel", Recipe(prune, QuantSpec(int(b), "asymmetric"), finetune=ft))
            for b in bits_list.split("/")
        ]
        for name, recipe in steps:
            t0 = time.perf_counter()
            r = wb.evaluate(recipe, MeasureSettings(mode=args.eval, latency=False))
            print(row(model_id, name, r, dense, "–", time.perf_counter() - t0), flush=True)
        for bits in bits_list.split("/"):
            lines, final = kmeans_rows(wb, prune, ft, int(bits), args.codebook_share, args.eval, dense)
            print("\n".join(lines), flush=True)
            verdicts.append(verdict(f"{model_id} ({prune.sparsity:.0%}, {bits}-bit k-means)", model_id, final, dense))
    print(
        f"\n_Eval set {dense.eval_set} ({dense.eval_samples:,} images); file = PruneScope artefact (.psz) with "
        "entropy-coded k-means indices where smaller, packed = the same without entropy coding; dense = torch.save "
        "fp32 state_dict. k-means: one codebook of 2^k fp16 values per layer over its non-zero weights._\n"
    )
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
