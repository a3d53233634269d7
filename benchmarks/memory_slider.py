"""Does the app leak? Resident memory over 500 slider moves on the default model (not a test).

Drives the real app with Streamlit's AppTest on lenet5-mnist: moves the sparsity slider and the
bit-width select-slider through many distinct recipes (and back over visited ones), and reads the
process's resident set size (VmRSS) after a warm-up and then every 50 moves. The issue's target:
500 moves grow RSS by <= 50 MB. Every cache in the app is bounded, so growth must level off.

    python benchmarks/memory_slider.py [--moves 500] [--warmup 40]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PRUNESCOPE_OFFLINE", "1")

from slider_latency import warm_server_navigation  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import compress_core  # noqa: E402,F401

BITS = [32, 8, 4, 2, 16, 6, 3, 1]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def moves():
    """(sparsity %, bits) pairs: 20 x 8 = 160 distinct recipes, then revisits, cycling."""
    pairs = list(itertools.product(range(0, 100, 5), BITS))
    return itertools.cycle(
        pairs[::7] + pairs[1::7] + pairs[2::7] + pairs[3::7] + pairs[4::7] + pairs[5::7] + pairs[6::7]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=40)
    args = ap.parse_args()
    warm_server_navigation()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    if at.exception:
        raise SystemExit(f"the app failed to open: {at.exception}")
    gen = moves()
    samples: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    for i in range(1, args.warmup + args.moves + 1):
        pct, bits = next(gen)
        at.slider(key="w_sparsity_pct").set_value(pct)
        at.select_slider(key="w_bits").set_value(bits).run()
        if at.exception:
            raise SystemExit(f"move {i} ({pct} %, {bits} bits): {at.exception}")
        if i == args.warmup or (i > args.warmup and (i - args.warmup) % 50 == 0):
            gc.collect()
            samples.append((i - args.warmup, rss_mb()))
    wall = time.perf_counter() - t0
    base = samples[0][1]
    print(
        f"Resident memory over {args.moves} slider moves after {args.warmup} warm-up moves "
        f"(lenet5-mnist, sparsity x bit-width, AppTest in one process; {wall:.0f} s)\n"
    )
    print("| moves after warm-up | RSS (MB) | growth (MB) |")
    print("| ---: | ---: | ---: |")
    for n, mb in samples:
        print(f"| {n} | {mb:.1f} | {mb - base:+.1f} |")
    growth = samples[-1][1] - base
    print(
        f"\nGrowth over {args.moves} moves: {growth:+.1f} MB (target <= 50 MB: {'met' if growth <= 50 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
