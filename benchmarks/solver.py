"""The budget solver against the best uniform grid recipe under the same budget (issue #13).

For each model and budget: ``compress_core.study.solver.solve`` (profile and grid on the 1,000-image quick
subset, the answer and the best few uniform recipes re-measured on the full test set), then a second,
identical solve to time the cached path (profile, grid and candidates read back from the store). Prints a
Markdown table with the CPU line and the load average, ready for benchmarks/RESULTS.md.

Budgets: file size at 1/10, 1/20 and 1/40 of the dense ``.psz`` file; for ResNet-20 (``--latency-models``)
also a latency limit at ``--latency-share`` of the dense latency on each of ``--latency-runtimes`` (default
``torch,auto``: eager PyTorch, and the runtime the dashboard defaults to, the fastest here by
``deployment.fastest_runtime``, e.g. OpenVINO), batch 1, ``--threads`` threads, searched over structured
per-layer sparsity (unstructured zeros do not make dense kernels faster). The solver and the best uniform
recipe are both measured on that runtime (rows stored under ``quick@runtime`` / ``full@runtime``); a line per
latency budget after the table names its kernels.

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/solver.py [--models lenet5-mnist resnet20-cifar10]
           [--store PATH] [--threads 2] [--eval full] [--latency-runtimes torch,auto] [--only all|size|latency]
           [--latency-models resnet20-cifar10]
"""

from __future__ import annotations

import argparse
import os
import time

import compress_core  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)

# isort: split
import torch

from compress_core.base import machine
from compress_core.base.paths import cache_dir
from compress_core.base.recipe import Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.base.threads import configure_threads
from compress_core.bench.workbench import Workbench
from compress_core.deploy import RuntimeBench
from compress_core.study.solver import Budget, SearchSpace, solve
from compress_core.study.solver.reuse import describe
from compress_core.study.store import ResultStore

SIZE_SHARES = (10, 20, 40)


def dense_latency(wb: Workbench, store: ResultStore, runtime: str = "torch") -> float:
    """The dense latency the solver itself compares with: its stored row on ``runtime`` when there is one timed
    at this thread count (a fresh timing on this shared machine can differ from it by half), else a new
    measurement (which the store keeps)."""
    row = store.get(wb.model_id, Recipe().to_json(), "quick", 1, runtime)
    if row is None or not row.get("latency_ms_p50") or row.get("latency_threads") != torch.get_num_threads():
        fresh = RuntimeBench.of(wb).evaluate(Recipe(), runtime, MeasureSettings("quick")).to_dict()
        row = store.put(wb.model_id, Recipe().to_json(), "quick", 1, fresh, runtime=runtime)
        if row.get("latency_threads") != torch.get_num_threads():  # the store kept an older timing
            row = fresh
    return float(row["latency_ms_p50"])


def latency_runtimes(wb: Workbench, names: str, threads: int) -> list[tuple[str, str]]:
    """(runtime key, why) per name of the comma list, ``auto`` resolved to the fastest runtime here (the
    dashboard's default), each runtime once."""
    from compress_core.deploy import available, fastest_runtime

    out: dict[str, str] = {}
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name == "auto":
            key, why = fastest_runtime(RuntimeBench.of(wb), batch=1, threads=threads)
        else:
            reason = available().get(name, f"unknown runtime; choose auto or one of {', '.join(available())}")
            if reason is not None:
                raise SystemExit(f"--latency-runtimes: {name}: {reason}")
            key, why = name, "named on the command line"
        out.setdefault(key, why)
    return list(out.items())


def budgets(
    model_id: str, wb: Workbench, args: argparse.Namespace, store: ResultStore, notes: list[str]
) -> list[tuple[str, Budget, SearchSpace]]:
    dense = wb.dense_facts()["artifact_bytes"]
    out = [(f"size ≤ 1/{k} ({dense // k:,} B)", Budget(max_size_bytes=dense // k), SearchSpace()) for k in SIZE_SHARES]
    out = out if args.only in ("all", "size") else []
    if model_id not in args.latency_models or args.only not in ("all", "latency"):
        return out
    for runtime, why in latency_runtimes(wb, args.latency_runtimes, args.threads):
        notes.append(f"- {model_id}: latency runtime {runtime}: {why}")
        limit = round(dense_latency(wb, store, runtime) * args.latency_share, 3)
        out.append(
            (
                f"latency ≤ {limit:.3g} ms ({args.latency_share:.0%} of dense, {runtime}, batch 1, "
                f"{args.threads} threads)",
                Budget(max_latency_ms=limit, runtime=runtime, batch=1, threads=args.threads),
                SearchSpace(kinds=("structured",)),
            )
        )
    return out


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def ms(r: dict) -> str:
    return "" if r.get("latency_ms_p50") is None else f", {r['latency_ms_p50']:.3f} ms"


def row(model_id: str, label: str, sol, cold_s: float, warm_s: float) -> str:
    r, u, p, e = sol.result, sol.uniform_best, sol.predicted, sol.prediction_error
    if r is None:
        why = "; ".join(sol.infeasible)
        return f"| {model_id} | {label} | infeasible: {why} | | | | | | | {cold_s:.0f} / {warm_s:.0f} |"
    timed = sol.budget.get("max_latency_ms") is not None
    uni = "none" if u is None else f"{pct(u['accuracy'])} ({u['size_bytes']:,} B{ms(u) if timed else ''})"
    gain = "–" if u is None else f"{100 * (r['accuracy'] - u['accuracy']):+.2f}"
    lat = (
        "–"
        if r.get("latency_ms_p50") is None or p.get("latency_ms_p50") is None
        else (f"{p['latency_ms_p50']:.3f} / {r['latency_ms_p50']:.3f}")
    )
    missed = "" if sol.feasible else " ✗ misses the budget"
    return (
        f"| {model_id} | {label} | {pct(r['accuracy'])} ({r['size_bytes']:,} B){missed} | "
        f"{uni} | {gain} | "
        f"{pct(p['accuracy'])} / {100 * e['accuracy']:+.2f} pp | {p['size_bytes']:,} / {r['size_bytes']:,} | "
        f"{lat} | {sol.notes[-1].removeprefix('returned: the ')} | {cold_s:.0f} / {warm_s:.0f} |"
    )


def footnote(model_id: str, budget: Budget, sol) -> str:
    """Which kernels ran a latency budget's answer and its uniform best, on which runtime, and what was reused."""
    r, u = sol.result or {}, sol.uniform_best or {}
    return (
        f"- {model_id}, latency ≤ {budget.max_latency_ms:.3g} ms on {budget.runtime} (batch {budget.batch}, "
        f"{budget.threads} threads): solver {r.get('latency_kernels') or '–'}; uniform best "
        f"{u.get('latency_kernels') or '–'}; {describe(sol.reuse) if sol.reuse else ''}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lenet5-mnist", "resnet20-cifar10"])
    ap.add_argument("--store", default=str(cache_dir() / "solver-benchmark.sqlite"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", default="full", choices=("quick", "full"))
    ap.add_argument("--latency-share", type=float, default=0.7)
    ap.add_argument(
        "--latency-runtimes",
        default="torch,auto",
        help="runtimes of the latency budgets, comma list; auto: the fastest here (the dashboard's default)",
    )
    ap.add_argument("--latency-models", nargs="+", default=["resnet20-cifar10"], help="models with latency budgets")
    ap.add_argument("--only", choices=("all", "size", "latency"), default="all")
    args = ap.parse_args()
    configure_threads(args.threads)
    print(machine.machine_line())
    print(f"threads {torch.get_num_threads()}; load average at start {os.getloadavg()[0]:.1f}; eval {args.eval}")
    print(
        "| model | budget | solver (measured) | best uniform (measured) | Δ pp | predicted acc / error | "
        "predicted / measured bytes | predicted / measured ms | answer | solve s cold / cached |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    gains: list[float] = []
    kernels: list[str] = []
    with ResultStore(args.store) as store:
        for model_id in args.models:
            wb = Workbench(model_id)
            for label, budget, space in budgets(model_id, wb, args, store, kernels):
                t0 = time.perf_counter()
                solve(model_id, budget, space, mode=args.eval, store=store, workbench=wb)
                cold = time.perf_counter() - t0
                t0 = time.perf_counter()
                sol = solve(model_id, budget, space, mode=args.eval, store=store, workbench=wb)
                warm = time.perf_counter() - t0
                if sol.result is not None and sol.uniform_best is not None:
                    gains.append(sol.result["accuracy"] - sol.uniform_best["accuracy"])
                print(row(model_id, label, sol, cold, warm), flush=True)
                if budget.needs_latency:
                    kernels.append(footnote(model_id, budget, sol))
    if kernels:  # after the table, so that it stays one Markdown table
        print("\n" + "\n".join(kernels))
    if gains:
        print(
            f"\nmean gain over the uniform best: {100 * sum(gains) / len(gains):+.2f} pp over {len(gains)} budgets; "
            f"load average at end {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
