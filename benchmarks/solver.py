"""The budget solver against the best uniform grid recipe under the same budget (issue #13).

For each model and budget: ``compress_core.solver.solve`` (profile and grid on the 1,000-image quick
subset, the answer and the best few uniform recipes re-measured on the full test set), then a second,
identical solve to time the cached path (profile, grid and candidates read back from the store). Prints a
Markdown table with the CPU line and the load average, ready for benchmarks/RESULTS.md.

Budgets: file size at 1/10, 1/20 and 1/40 of the dense ``.psz`` file; for ResNet-20 also a latency limit on
the default runtime (eager torch, batch 1) at ``--latency-share`` of the dense latency, searched over
structured per-layer sparsity (unstructured zeros do not make eager kernels faster).

Usage: COMPRESS_DATA_DIR=../shared/data python benchmarks/solver.py [--models lenet5-mnist resnet20-cifar10]
           [--store PATH] [--threads 2] [--eval full]
"""

from __future__ import annotations

import argparse
import os
import time

import compress_core  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)

# isort: split
import torch

from compress_core import report
from compress_core.paths import cache_dir
from compress_core.pipeline import Workbench
from compress_core.recipe import Recipe
from compress_core.runtime import configure_threads
from compress_core.solver import Budget, SearchSpace, solve
from compress_core.store import ResultStore

SIZE_SHARES = (10, 20, 40)


def dense_latency(wb: Workbench, store: ResultStore) -> float:
    """The dense latency the solver itself compares with: its stored row when there is one (a fresh timing
    on this shared machine can differ from it by half), else a new measurement (which the store keeps)."""
    row = store.get(wb.model_id, Recipe().to_json(), "quick", 1)
    if row is None or not row.get("latency_ms_p50"):
        row = store.put(wb.model_id, Recipe().to_json(), "quick", 1, wb.evaluate(Recipe(), "quick").to_dict())
    return float(row["latency_ms_p50"])


def budgets(
    model_id: str, wb: Workbench, latency_share: float, store: ResultStore, only: str
) -> list[tuple[str, Budget, SearchSpace]]:
    dense = wb.dense_facts()["artifact_bytes"]
    out = [(f"size ≤ 1/{k} ({dense // k:,} B)", Budget(max_size_bytes=dense // k), SearchSpace()) for k in SIZE_SHARES]
    out = out if only in ("all", "size") else []
    if model_id.startswith("resnet20") and only in ("all", "latency"):
        dense_ms = dense_latency(wb, store)
        limit = round(dense_ms * latency_share, 3)
        out.append(
            (
                f"latency ≤ {limit:.2f} ms ({latency_share:.0%} of dense, torch, batch 1)",
                Budget(max_latency_ms=limit),
                SearchSpace(kinds=("structured",)),
            )
        )
    return out


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def row(model_id: str, label: str, sol, cold_s: float, warm_s: float) -> str:
    r, u, p, e = sol.result, sol.uniform_best, sol.predicted, sol.prediction_error
    if r is None:
        why = "; ".join(sol.infeasible)
        return f"| {model_id} | {label} | infeasible: {why} | | | | | | | {cold_s:.0f} / {warm_s:.0f} |"
    uni = "none" if u is None else f"{pct(u['accuracy'])} ({u['size_bytes']:,} B)"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lenet5-mnist", "resnet20-cifar10"])
    ap.add_argument("--store", default=str(cache_dir() / "solver-benchmark.sqlite"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", default="full", choices=("quick", "full"))
    ap.add_argument("--latency-share", type=float, default=0.7)
    ap.add_argument("--only", choices=("all", "size", "latency"), default="all")
    args = ap.parse_args()
    configure_threads(args.threads)
    print(report.machine_line())
    print(f"threads {torch.get_num_threads()}; load average at start {os.getloadavg()[0]:.1f}; eval {args.eval}")
    print(
        "| model | budget | solver (measured) | best uniform (measured) | Δ pp | predicted acc / error | "
        "predicted / measured bytes | predicted / measured ms | answer | solve s cold / cached |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    gains = []
    with ResultStore(args.store) as store:
        for model_id in args.models:
            wb = Workbench(model_id)
            for label, budget, space in budgets(model_id, wb, args.latency_share, store, args.only):
                t0 = time.perf_counter()
                solve(model_id, budget, space, mode=args.eval, store=store, workbench=wb)
                cold = time.perf_counter() - t0
                t0 = time.perf_counter()
                sol = solve(model_id, budget, space, mode=args.eval, store=store, workbench=wb)
                warm = time.perf_counter() - t0
                if sol.result is not None and sol.uniform_best is not None:
                    gains.append(sol.result["accuracy"] - sol.uniform_best["accuracy"])
                print(row(model_id, label, sol, cold, warm), flush=True)
    if gains:
        print(
            f"\nmean gain over the uniform best: {100 * sum(gains) / len(gains):+.2f} pp over {len(gains)} budgets; "
            f"load average at end {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
