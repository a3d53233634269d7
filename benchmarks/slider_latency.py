"""How fast does Explore refresh after a slider move? Prints a markdown table (not a test).

Drives the real app with Streamlit's AppTest: opens Explore on a model, moves the sparsity
slider to N values it has not visited (so every move measures a new recipe), and times each
``AppTest.run()`` — the whole rerun: four metric cards, the honesty notes and all charts.
Targets from the issue: p50 <= 0.3 s on lenet5-mnist, <= 1.5 s on resnet20-cifar10 (quick eval).
ResNet-20 runs only when COMPRESS_DATA_DIR is set (weights + CIFAR-10 test set).

    python benchmarks/slider_latency.py [--moves 12] [--models lenet5-mnist resnet20-cifar10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PRUNESCOPE_OFFLINE", "1")

from streamlit.runtime.pages_manager import PagesManager  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import compress_core  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)

TARGETS_S = {"lenet5-mnist": 0.3, "resnet20-cifar10": 1.5}
# Sparsities in percent, in an order that jumps around; none is visited twice.
VALUES_PCT = [35, 70, 15, 85, 55, 5, 65, 25, 90, 45, 75, 20, 95, 10, 80, 30, 60, 40, 50]


def warm_server_navigation() -> None:
    """AppTest starts every run in Streamlit's legacy pages/ mode, which a running server leaves after
    its first ``st.navigation`` call; without this each timed run would also bounce through app.py."""
    original = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(model_id: str, moves: int) -> dict:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params["model"] = model_id
    t0 = time.perf_counter()
    at.run()
    first_s = time.perf_counter() - t0
    if at.exception or at.error:
        raise SystemExit(f"{model_id}: the app failed to open: {at.exception or [e.value for e in at.error]}")
    times, changed = [], 0
    before = [m.value for m in at.metric]
    for pct in VALUES_PCT[:moves]:
        t0 = time.perf_counter()
        at.slider(key="w_sparsity_pct").set_value(pct).run()
        times.append(time.perf_counter() - t0)
        now = [m.value for m in at.metric]
        changed += now != before
        before = now
        if at.exception or at.error:
            raise SystemExit(f"{model_id} at {pct} %: {at.exception or [e.value for e in at.error]}")
    t0 = time.perf_counter()
    at.slider(key="w_sparsity_pct").set_value(VALUES_PCT[0]).run()  # back to a visited value: cached
    revisit_s = time.perf_counter() - t0
    return {"model": model_id, "moves": len(times), "changed": changed, "p50": statistics.median(times),
            "p95": percentile(times, 0.95), "max": max(times), "revisit": revisit_s, "first": first_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=12, help=f"slider moves per model (max {len(VALUES_PCT)})")
    parser.add_argument("--models", nargs="+", default=list(TARGETS_S))
    args = parser.parse_args()
    if not 1 <= args.moves <= len(VALUES_PCT):
        parser.error(f"--moves must be between 1 and {len(VALUES_PCT)}")
    warm_server_navigation()
    rows = []
    for model_id in args.models:
        if model_id.startswith("resnet") and not os.environ.get("COMPRESS_DATA_DIR"):
            print(f"skipping {model_id}: set COMPRESS_DATA_DIR to a folder with its weights and CIFAR-10",
                  file=sys.stderr)
            continue
        rows.append(measure(model_id, args.moves))
    import torch

    print(f"Explore slider latency: AppTest full rerun after each move, quick eval (1,000 images), "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| model | moves | metrics changed | p50 (s) | p95 (s) | max (s) | target p50 (s) | revisit (s) | "
          "first open (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        target = TARGETS_S.get(r["model"])
        mark = "" if target is None else (" ✓" if r["p50"] <= target else " ✗")
        print(f"| {r['model']} | {r['moves']} | {r['changed']} | {r['p50']:.3f}{mark} | {r['p95']:.3f} | "
              f"{r['max']:.3f} | {target if target is not None else '–'} | {r['revisit']:.3f} | {r['first']:.1f} |")


if __name__ == "__main__":
    main()
