"""``python -m compress_core sweep``: a grid over kind x sparsity x bits, measured in this process or as Ray
tasks, resumable from the results store, written to CSV."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from compress_core.base.recipe import SCOPES
from compress_core.base.records import EVAL_MODES
from compress_core.cli.common import keys, positive_int
from compress_core.cli.models import CliError
from compress_core.cli.recipe_args import add_finetune_args, add_recovery_arg, finetune_from_args
from compress_core.deploy.runtimes import RUNTIMES
from compress_core.engine.prune.criteria import CRITERIA


def add_sweep_parser(sub: Any) -> None:
    s = sub.add_parser("sweep", help="grid over kind x sparsity x bits, written to CSV")
    s.add_argument("--model", default="lenet5-mnist")
    s.add_argument("--kinds", default="unstructured", help="comma list of pruning kinds")
    s.add_argument("--sparsities", default="0,0.25,0.5,0.75,0.9", help="comma list of fractions")
    s.add_argument("--bits-list", default="32,8,4", help="comma list of bit-widths")
    s.add_argument("--criterion", choices=keys(CRITERIA), default="l1")
    s.add_argument("--scope", choices=SCOPES, default="global")
    s.add_argument("--int8", action="store_true", help="also run each 8-bit point on real int8 kernels")
    add_recovery_arg(s)
    s.add_argument("--eval", choices=EVAL_MODES, default="quick")
    s.add_argument("--batch", type=positive_int, default=1)
    s.add_argument("--latency-budget", type=float, default=0.3)
    s.add_argument(
        "--runtime",
        choices=keys(RUNTIMES),
        default="torch",
        help="measure every config on this deployment runtime (stored apart from eager PyTorch's rows)",
    )
    add_finetune_args(s.add_argument_group("fine-tuning of every pruned point"))
    s.add_argument("--out", default="sweep.csv", help="CSV path (default sweep.csv)")
    s.add_argument(
        "--store",
        metavar="PATH",
        help="results database to resume from and write to (default: <cache dir>/results.sqlite)",
    )
    s.add_argument("--no-store", action="store_true", help="measure every config afresh; keep nothing on disk")
    s.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="measure the configs as Ray tasks (pip install -e '.[ray]'): "
        "local, auto (the Ray running here, else a new one), host:6379 or ray://host:10001",
    )
    s.add_argument("--ray-cpus-per-config", type=positive_int, metavar="N", help="CPUs and torch threads per task")
    s.add_argument(
        "--ray-finetune-cpus",
        type=positive_int,
        metavar="N",
        help="CPUs per fine-tuning task (default: twice --ray-cpus-per-config, at most half the largest node)",
    )


def _recipes(args: argparse.Namespace) -> list:
    """The grid of recipes the sweep flags describe; fine-tuning (if any) on every pruned point."""
    from compress_core.study.sweep import grid

    try:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        sparsities = [float(s) for s in args.sparsities.split(",") if s.strip()]
        bits = [int(b) for b in args.bits_list.split(",") if b.strip()]
    except ValueError as exc:
        raise CliError(f"sweep lists must be comma-separated numbers: {exc}") from None
    recipes = grid(
        kinds,
        sparsities,
        bits,
        criterion=args.criterion,
        scope=args.scope,
        int8=args.int8,
        recovery=args.recovery or "none",
    )
    ft = finetune_from_args(args)
    if ft is not None:  # recover every pruned point; the dense and quantize-only points stay as they are
        recipes = [replace(r, finetune=ft) if r.prune.active else r for r in recipes]
    return recipes


def cmd_sweep(args: argparse.Namespace) -> int:
    from compress_core.study.sweep import run_sweep

    recipes = _recipes(args)
    from tqdm.auto import tqdm

    from compress_core.study.store import ResultStore

    executor = _sweep_executor(args)
    store = None if args.no_store else ResultStore(args.store)  # StoreError is a ValueError: one clear line
    try:
        with tqdm(total=len(recipes), desc=f"sweep {args.model}", file=sys.stderr) as bar:
            df = run_sweep(
                args.model,
                recipes,
                mode=args.eval,
                latency_batch=args.batch,
                executor=executor,
                latency_budget_s=args.latency_budget,
                on_result=lambda *_: bar.update(1),
                store=store,
                runtime=args.runtime,
            )
    finally:
        if store is not None:
            store.close()
        if executor is not None:
            executor.close()
    df.to_csv(args.out, index=False)
    print(f"wrote {len(df)} rows to {args.out}", file=sys.stderr)
    print("".join(f"failed: {f['label']}: {f['error']}\n" for f in df.attrs["failed"]), end="", file=sys.stderr)
    return 1 if df.attrs["failed"] else 0


def _sweep_executor(args: argparse.Namespace) -> Any:  # --ray: a RayExecutor; None: in this process
    if args.ray is None and (args.ray_cpus_per_config or args.ray_finetune_cpus):
        raise CliError("--ray-cpus-per-config and --ray-finetune-cpus go with --ray ADDRESS")
    from compress_core.study.executors import RayExecutor, ray_missing

    if args.ray is not None and (missing := ray_missing()) is not None:
        raise CliError(f"--ray needs Ray: {missing}")
    return None if args.ray is None else RayExecutor(args.ray, args.ray_cpus_per_config or 1, args.ray_finetune_cpus)
