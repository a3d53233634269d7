"""Command line: ``python -m compress_core {models,evaluate,sweep,train}``.

Bad input exits with status 2 and one clear line on stderr, never a traceback. With ``--json``,
``evaluate`` prints exactly one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from compress_core.base.recipe import (
    BITS,
    CRITERIA,
    GRANULARITIES,
    PRUNE_KINDS,
    RECOVERY_LEVELS,
    ROUND_TO,
    SCHEDULES,
    SCHEMES,
    SCOPES,
    FinetuneSpec,
    Recipe,
)
from compress_core.base.records import EVAL_MODES
from compress_core.base.settings import MeasureSettings
from compress_core.cli.models import CliError, workbench_for
from compress_core.cli.solve import add_solve_parser, cmd_solve

CONTRACT_KEYS = ("model", "recipe", "eval_samples", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "agreement",
                 "params_total", "params_nonzero", "macs", "dense_size_bytes", "size_bytes", "compression_ratio",
                 "latency_ms_p50", "latency_ms_iqr", "latency_batch", "latency_threads", "latency_kernels", "simulated")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, status 2, no usage dump
        raise CliError(message)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sparsity must be a number like 0.5; got {text!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 0.99:
        raise argparse.ArgumentTypeError(f"sparsity must be a fraction between 0 and 0.99; got {text}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recipe")
    g.add_argument("--recipe", help="a recipe as JSON text or @file.json (other recipe flags then refine it)")
    g.add_argument("--kind", choices=PRUNE_KINDS, help="pruning kind (default none)")
    g.add_argument("--criterion", choices=CRITERIA, help="importance criterion (default l1)")
    g.add_argument("--scope", choices=SCOPES, help="layer: same fraction per layer; global: one threshold")
    g.add_argument("--sparsity", type=_fraction, help="fraction to remove, 0..0.99")
    g.add_argument("--inner-only", action="store_true",
                   help="structured: keep residual streams, prune only channels inside blocks (Li et al. 2017)")
    g.add_argument("--round-to", type=int, choices=ROUND_TO, help="structured: keep a multiple of N channels per group")
    g.add_argument("--bits", type=int, choices=BITS, help="weight bits: 1,2,3,4,6,8 fixed point, 16 fp16, 32 fp32")
    g.add_argument("--scheme", choices=SCHEMES, help="symmetric, asymmetric (min/max) or kmeans (weight sharing)")
    g.add_argument("--granularity", choices=GRANULARITIES)
    g.add_argument("--int8", action="store_true", help="run on real int8 CPU kernels (implies --bits 8)")
    _add_recovery_arg(g)
    _add_finetune_args(g)


def _add_recovery_arg(g: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    g.add_argument("--recovery", choices=RECOVERY_LEVELS, help="post-training recovery on training images: bn "
                   "(re-estimate BatchNorm statistics) or reconstruct (layer-wise, against the dense model)")


def _add_finetune_args(g: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    g.add_argument("--finetune-epochs", type=float, help="fine-tune after pruning for this many epochs")
    g.add_argument("--finetune-lr", type=float)
    g.add_argument("--distill", action="store_true", help="fine-tune with knowledge distillation from the dense model")
    g.add_argument("--schedule", choices=SCHEDULES, help="pruning schedule when fine-tuning")
    g.add_argument("--finetune-samples", type=int, help="cap training images per epoch (0 = all)")


def finetune_from_args(args: argparse.Namespace, base: FinetuneSpec | None = None) -> FinetuneSpec | None:
    """The fine-tune flags as a spec refining ``base``; None when no flag is given and there is no base."""
    ft = {k: v for k, v in (("epochs", args.finetune_epochs), ("lr", args.finetune_lr), ("schedule", args.schedule),
                            ("max_samples", args.finetune_samples)) if v is not None}
    if args.distill:
        ft["distill"] = True
    if not ft:
        return base
    return FinetuneSpec(**{**(base.__dict__ if base else {}), **ft})


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    base = Recipe()
    if args.recipe:
        text = args.recipe
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                raise CliError(f"cannot read recipe file {text[1:]}: {exc.strerror}") from None
        base = Recipe.from_json(text)
    prune = {k: v for k, v in (("kind", args.kind), ("criterion", args.criterion), ("scope", args.scope),
                               ("sparsity", args.sparsity), ("round_to", args.round_to)) if v is not None}
    if args.inner_only:
        prune["residual"] = False
    if args.sparsity and args.kind is None and base.prune.kind == "none":
        prune["kind"] = "unstructured"  # a sparsity alone means the common case
    quant = {k: v for k, v in (("bits", args.bits), ("scheme", args.scheme), ("granularity", args.granularity))
             if v is not None}
    if args.int8:
        quant["int8"] = True
        if args.bits not in (None, 8):
            raise CliError(f"--int8 runs 8-bit kernels; it cannot be combined with --bits {args.bits}")
        quant["bits"] = 8
    recipe = base.with_prune(**prune).with_quant(**quant)
    if args.recovery is not None:
        recipe = recipe.with_recovery(args.recovery)
    return replace(recipe, finetune=finetune_from_args(args, base.finetune))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m compress_core", description="Prune, quantize and measure real models.")
    parser.add_argument("--threads", type=_positive_int, help="torch threads (default: PRUNESCOPE_THREADS or 2)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser("models", help="list the model zoo")
    m.add_argument("--json", action="store_true")

    e = sub.add_parser("evaluate", help="compress one model with one recipe and measure it")
    e.add_argument("--model", default="lenet5-mnist")
    _add_recipe_args(e)
    e.add_argument("--batch", type=_positive_int, default=1, help="latency batch size (default 1)")
    e.add_argument("--eval", choices=EVAL_MODES, default="quick", help="quick: stratified 1,000; full: test set")
    e.add_argument("--latency-budget", type=float, default=1.0, help="seconds of timing per latency measurement")
    e.add_argument("--no-latency", action="store_true")
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    e.add_argument("--images", metavar="DIR", help="evaluate on this image folder (class sub-folders named after "
                   "ImageNet classes give top-1; plain images give agreement with the dense model only)")
    e.add_argument("--upload", metavar="FILE", help="evaluate your own model file instead of --model: a state_dict "
                   "(.safetensors, .pt/.pth/.bin/.ckpt), TorchScript archive or torch.export .pt2")
    e.add_argument("--arch", metavar="ID", help="with --upload: the zoo architecture of a state_dict "
                   "(default: detected from parameter names and shapes)")
    e.add_argument("--dataset", choices=("mnist", "cifar10"), help="with --upload: the dataset of a compiled graph "
                   "that matches no zoo architecture")
    e.add_argument("--save", metavar="PATH", help="write the compressed artefact here")
    e.add_argument("--artifact", metavar="PATH", help="measure a saved artefact instead of compressing")
    e.add_argument("--runtime", choices=("torch", "onnxruntime", "openvino", "executorch"), help="measure on this")
    e.add_argument("--save-deploy", metavar="PATH", help="write the runtime's deployable file(s) here")

    s = sub.add_parser("sweep", help="grid over kind x sparsity x bits, written to CSV")
    s.add_argument("--model", default="lenet5-mnist")
    s.add_argument("--kinds", default="unstructured", help="comma list of pruning kinds")
    s.add_argument("--sparsities", default="0,0.25,0.5,0.75,0.9", help="comma list of fractions")
    s.add_argument("--bits-list", default="32,8,4", help="comma list of bit-widths")
    s.add_argument("--criterion", choices=CRITERIA, default="l1")
    s.add_argument("--scope", choices=SCOPES, default="global")
    s.add_argument("--int8", action="store_true", help="also run each 8-bit point on real int8 kernels")
    _add_recovery_arg(s)
    s.add_argument("--eval", choices=EVAL_MODES, default="quick")
    s.add_argument("--batch", type=_positive_int, default=1)
    s.add_argument("--latency-budget", type=float, default=0.3)
    s.add_argument("--runtime", choices=("torch", "onnxruntime", "openvino", "executorch"), default="torch",
                   help="measure every config on this deployment runtime (stored apart from eager PyTorch's rows)")
    _add_finetune_args(s.add_argument_group("fine-tuning of every pruned point"))
    s.add_argument("--out", default="sweep.csv", help="CSV path (default sweep.csv)")
    s.add_argument("--store", metavar="PATH", help="results database to resume from and write to "
                   "(default: <cache dir>/results.sqlite)")
    s.add_argument("--no-store", action="store_true", help="measure every config afresh; keep nothing on disk")
    s.add_argument("--ray", metavar="ADDRESS", help="measure the configs as Ray tasks (pip install -e '.[ray]'): "
                   "local, auto (the Ray running here, else a new one), host:6379 or ray://host:10001")
    s.add_argument("--ray-cpus-per-config", type=_positive_int, metavar="N", help="CPUs and torch threads per task")
    s.add_argument("--ray-finetune-cpus", type=_positive_int, metavar="N", help="CPUs per fine-tuning task "
                   "(default: twice --ray-cpus-per-config, at most half the largest node)")

    add_solve_parser(sub)
    t = sub.add_parser("train", help="train a bundled model and rewrite its weights and card in assets/")
    t.add_argument("model", help="lenet5-mnist or lenet300-mnist")
    t.add_argument("--seed", type=int, default=0)
    return parser


def _cmd_models(args: argparse.Namespace) -> int:
    from compress_core.models import REGISTRY, available

    rows = []
    for spec in REGISTRY.values():
        rows.append({"id": spec.id, "name": spec.name, "dataset": spec.dataset, "params": spec.params,
                     "reference_accuracy": spec.reference_accuracy, "available": available(spec.id),
                     "license": spec.license})
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'id':28} {'dataset':11} {'params':>11} {'ref acc':>8}  weights")
    for r in rows:
        acc = f"{r['reference_accuracy']:.2%}" if r["reference_accuracy"] else "-"
        where = "ready" if r["available"] else "download on first use (or set COMPRESS_DATA_DIR)"
        print(f"{r['id']:28} {r['dataset']:11} {r['params']:>11,} {acc:>8}  {where}")
    return 0


def _progress_bar(desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc=desc, file=sys.stderr, leave=False, bar_format="{l_bar}{bar}| {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message)
        bar.refresh()

    return bar, update


def _cmd_evaluate(args: argparse.Namespace) -> int:

    if args.artifact and (args.runtime or args.save_deploy):
        raise CliError("--runtime and --save-deploy deploy a recipe; they do not go with --artifact")
    if args.artifact:
        from compress_core.bench.saved import evaluate_artifact

        result = evaluate_artifact(args.artifact, mode=args.eval, latency_batch=args.batch,
                                   latency_budget_s=args.latency_budget, measure_latency=not args.no_latency)
    else:
        recipe = recipe_from_args(args)
        wb = workbench_for(args.model, args.images, args.upload, args.arch, args.dataset)
        bar, update = _progress_bar("fine-tuning") if recipe.finetune else (None, None)
        comp = wb.compress(recipe, progress=update)
        if bar is not None:
            bar.close()
        if args.save:
            from compress_core.files.artifact import save_artifact

            save_artifact(comp, wb.artifact_id, args.save)
        result = _on_runtime(args, wb, recipe, comp) if args.runtime or args.save_deploy else wb.evaluate(
            recipe, _measure_settings(args), compressed=comp)
    out = result.to_dict()
    if args.json:  # NaN (accuracy on unlabelled images) is not JSON: write null
        print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}))
        return 0
    lat = f"{out['latency_ms_p50']:.3f} ms (IQR {out['latency_ms_iqr']:.3f}, batch {out['latency_batch']}, " \
          f"{out['latency_threads']} threads, {out['latency_kernels']})" if out["latency_ms_p50"] else "not measured"
    print(f"model        {out['model']}  [{out['recipe_label']}]")
    print(f"accuracy     {out['accuracy']:.2%}  (95% CI {out['accuracy_ci_low']:.2%}-{out['accuracy_ci_high']:.2%}, "
          f"n={out['eval_samples']} on {out['eval_set']}; dense {out['dense_accuracy']:.2%}; "
          f"agreement {out['agreement']:.2%})")
    print(f"params       {out['params_nonzero']:,} non-zero / {out['params_total']:,} total "
          f"(dense {out['dense_params']:,}); MACs {out['macs']:,} (dense {out['dense_macs']:,})")
    print(f"size         {out['size_bytes']:,} B [{out['size_method']}] vs dense fp32 {out['dense_size_bytes']:,} B "
          f"= {out['compression_ratio']:.1f}x smaller")
    print(f"latency      {lat}")
    for note in out["simulated"]:
        print(f"note         {note}")
    return 0


def _on_runtime(args: argparse.Namespace, wb, recipe: Recipe, comp):
    """``evaluate --runtime`` (default torch) on that runtime's session; ``--save-deploy``: its file(s)."""
    from compress_core.deploy import RuntimeBench

    rt, rb = args.runtime or "torch", RuntimeBench.of(wb)
    if args.save_deploy:  # first: a path that cannot be written fails before the measurement
        written = rb.save(recipe, rt, args.save_deploy, args.batch, comp=comp)
        print(f"deploy       wrote {', '.join(written)}", file=sys.stderr)
    return rb.on_runtime(recipe, rt, _measure_settings(args), compressed=comp)


def _measure_settings(args: argparse.Namespace) -> MeasureSettings:
    return MeasureSettings(args.eval, args.batch, None, args.latency_budget, not args.no_latency)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from compress_core.study.sweep import grid, run_sweep

    try:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        sparsities = [float(s) for s in args.sparsities.split(",") if s.strip()]
        bits = [int(b) for b in args.bits_list.split(",") if b.strip()]
    except ValueError as exc:
        raise CliError(f"sweep lists must be comma-separated numbers: {exc}") from None
    recipes = grid(kinds, sparsities, bits, criterion=args.criterion, scope=args.scope, int8=args.int8,
                   recovery=args.recovery or "none")
    ft = finetune_from_args(args)
    if ft is not None:  # recover every pruned point; the dense and quantize-only points stay as they are
        recipes = [replace(r, finetune=ft) if r.prune.active else r for r in recipes]
    from tqdm.auto import tqdm

    from compress_core.study.store import ResultStore

    executor = _sweep_executor(args)
    store = None if args.no_store else ResultStore(args.store)  # StoreError is a ValueError: one clear line
    try:
        with tqdm(total=len(recipes), desc=f"sweep {args.model}", file=sys.stderr) as bar:
            df = run_sweep(args.model, recipes, mode=args.eval, latency_batch=args.batch, executor=executor,
                           latency_budget_s=args.latency_budget, on_result=lambda *_: bar.update(1), store=store,
                           runtime=args.runtime)
    finally:
        if store is not None:
            store.close()
        if executor is not None:
            executor.close()
    df.to_csv(args.out, index=False)
    print(f"wrote {len(df)} rows to {args.out}", file=sys.stderr)
    print("".join(f"failed: {f['label']}: {f['error']}\n" for f in df.attrs["failed"]), end="", file=sys.stderr)
    return 1 if df.attrs["failed"] else 0


def _sweep_executor(args: argparse.Namespace):  # --ray: a RayExecutor; None: in this process
    if args.ray is None and (args.ray_cpus_per_config or args.ray_finetune_cpus):
        raise CliError("--ray-cpus-per-config and --ray-finetune-cpus go with --ray ADDRESS")
    from compress_core.study.executors import RayExecutor, ray_missing

    if args.ray is not None and (missing := ray_missing()) is not None:
        raise CliError(f"--ray needs Ray: {missing}")
    return None if args.ray is None else RayExecutor(args.ray, args.ray_cpus_per_config or 1, args.ray_finetune_cpus)


def _cmd_train(args: argparse.Namespace) -> int:
    from compress_core.engine.train import train_bundled

    bar, update = _progress_bar(f"training {args.model}")
    card = train_bundled(args.model, seed=args.seed, progress=update)
    bar.close()
    print(json.dumps(card, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from compress_core.base.paths import MissingFileError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        from compress_core.base.threads import configure_threads

        configure_threads(args.threads)
        commands = {"models": _cmd_models, "evaluate": _cmd_evaluate, "sweep": _cmd_sweep, "solve": cmd_solve}
        return {**commands, "train": _cmd_train}[args.command](args)
    except (CliError, ValueError, MissingFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.strerror or exc} {getattr(exc, 'filename', '') or ''}".rstrip(), file=sys.stderr)
        return 2


def console() -> None:
    """The ``prunescope`` command (installed by ``pip install -e .``): ``python -m compress_core``."""
    sys.exit(main())
