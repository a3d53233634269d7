"""``python -m compress_core evaluate``: compress one model with one recipe and measure it (or measure a saved
artefact); with ``--json`` exactly one JSON object on stdout, with the keys ``CONTRACT_KEYS`` at least."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from compress_core.base.recipe import Recipe
from compress_core.base.records import EVAL_MODES
from compress_core.base.settings import MeasureSettings
from compress_core.bench.forgets import summary_keys
from compress_core.cli.common import keys, positive_int, progress_bar
from compress_core.cli.models import CliError, workbench_for
from compress_core.cli.recipe_args import add_recipe_args, recipe_from_args
from compress_core.deploy.runtimes import RUNTIMES
from compress_core.present.headline import headline

CONTRACT_KEYS = (
    "model",
    "recipe",
    "eval_samples",
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "agreement",
    "params_total",
    "params_nonzero",
    "macs",
    "dense_size_bytes",
    "size_bytes",
    "compression_ratio",
    "latency_ms_p50",
    "latency_ms_iqr",
    "latency_batch",
    "latency_threads",
    "latency_kernels",
    "simulated",
)


def add_evaluate_parser(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="compress one model with one recipe and measure it")
    e.add_argument("--model", default="lenet5-mnist")
    add_recipe_args(e)
    e.add_argument("--batch", type=positive_int, default=1, help="latency batch size (default 1)")
    e.add_argument("--eval", choices=EVAL_MODES, default="quick", help="quick: stratified 1,000; full: test set")
    e.add_argument("--latency-budget", type=float, default=1.0, help="seconds of timing per latency measurement")
    e.add_argument("--no-latency", action="store_true")
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    e.add_argument(
        "--images",
        metavar="DIR",
        help="evaluate on this image folder (class sub-folders named after "
        "ImageNet classes give top-1; plain images give agreement with the dense model only)",
    )
    e.add_argument(
        "--upload",
        metavar="FILE",
        help="evaluate your own model file instead of --model: a state_dict "
        "(.safetensors, .pt/.pth/.bin/.ckpt), TorchScript archive or torch.export .pt2",
    )
    e.add_argument(
        "--arch",
        metavar="ID",
        help="with --upload: the zoo architecture of a state_dict (default: detected from parameter names and shapes)",
    )
    e.add_argument(
        "--dataset",
        choices=("mnist", "cifar10"),
        help="with --upload: the dataset of a compiled graph that matches no zoo architecture",
    )
    e.add_argument("--save", metavar="PATH", help="write the compressed artefact here")
    e.add_argument("--artifact", metavar="PATH", help="measure a saved artefact instead of compressing")
    e.add_argument("--runtime", choices=keys(RUNTIMES), help="measure on this")
    e.add_argument("--save-deploy", metavar="PATH", help="write the runtime's deployable file(s) here")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.artifact and (args.runtime or args.save_deploy):
        raise CliError("--runtime and --save-deploy deploy a recipe; they do not go with --artifact")
    if args.artifact:
        from compress_core.bench.saved import evaluate_artifact

        result = evaluate_artifact(
            args.artifact,
            mode=args.eval,
            latency_batch=args.batch,
            latency_budget_s=args.latency_budget,
            measure_latency=not args.no_latency,
        )
    else:
        recipe = recipe_from_args(args)
        wb = workbench_for(args.model, args.images, args.upload, args.arch, args.dataset)
        bar, update = progress_bar("fine-tuning") if recipe.finetune else (None, None)
        comp = wb.compress(recipe, progress=update)
        if bar is not None:
            bar.close()
        if args.save:
            from compress_core.files.artifact import save_artifact

            save_artifact(comp, wb.artifact_id, args.save)
        result = (
            _on_runtime(args, wb, recipe, comp)
            if args.runtime or args.save_deploy
            else wb.evaluate(recipe, _measure_settings(args), compressed=comp)
        )
    out = result.to_dict()
    out.update(summary_keys(out.get("forgets")))  # flips, per_class, mean_kl, confusion_diff, flipped
    if args.json:  # every Result key, and the headline every page shows (compress_core.present.headline)
        out["headline"] = headline(out).to_dict()  # NaN (accuracy on unlabelled images) is not JSON: write null
        print(json.dumps(_finite(out)))
        return 0
    _print_result(out)
    return 0


def _finite(value: Any) -> Any:
    """NaN (accuracy on unlabelled images) is not JSON: null, in the headline too."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _print_result(out: dict[str, Any]) -> None:
    """A Result as the lines a person reads."""
    lat = (
        f"{out['latency_ms_p50']:.3f} ms (IQR {out['latency_ms_iqr']:.3f}, batch {out['latency_batch']}, "
        f"{out['latency_threads']} threads, {out['latency_kernels']})"
        if out["latency_ms_p50"]
        else "not measured"
    )
    print(f"model        {out['model']}  [{out['recipe_label']}]")
    print(
        f"accuracy     {out['accuracy']:.2%}  (95% CI {out['accuracy_ci_low']:.2%}-{out['accuracy_ci_high']:.2%}, "
        f"n={out['eval_samples']} on {out['eval_set']}; dense {out['dense_accuracy']:.2%}; "
        f"agreement {out['agreement']:.2%})"
    )
    print(
        f"params       {out['params_nonzero']:,} non-zero / {out['params_total']:,} total "
        f"(dense {out['dense_params']:,}); MACs {out['macs']:,} (dense {out['dense_macs']:,})"
    )
    print(
        f"size         {out['size_bytes']:,} B [{out['size_method']}] vs dense fp32 {out['dense_size_bytes']:,} B "
        f"= {out['compression_ratio']:.1f}x smaller"
    )
    print(f"latency      {lat}")
    h = headline(out)
    if h.speed_text():
        print(f"speed-up     {h.speed_text()} on {h.where()}")
    for note in out["simulated"]:
        print(f"note         {note}")


def _on_runtime(args: argparse.Namespace, wb: Any, recipe: Recipe, comp: Any) -> Any:
    """``evaluate --runtime`` (default torch) on that runtime's session; ``--save-deploy``: its file(s)."""
    from compress_core.deploy import RuntimeBench

    rt, rb = args.runtime or "torch", RuntimeBench.of(wb)
    if args.save_deploy:  # first: a path that cannot be written fails before the measurement
        written = rb.save(recipe, rt, args.save_deploy, args.batch, comp=comp)
        print(f"deploy       wrote {', '.join(written)}", file=sys.stderr)
    return rb.on_runtime(recipe, rt, _measure_settings(args), compressed=comp)


def _measure_settings(args: argparse.Namespace) -> MeasureSettings:
    return MeasureSettings(args.eval, args.batch, None, args.latency_budget, not args.no_latency)
