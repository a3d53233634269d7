"""Paired timing with and without a concurrent CPU load: part 3 of ``slider_latency.py`` (``--load``).

A structured 50 % model timed against its dense baseline (``timing.paired``, as the dashboard does) R times
on the machine as found, R times beside one idle-priority spinner per core and R times beside one busy
process per core, at 1 thread and at torch's default; next to it the old way (dense timed once, the model
later). ``load_table`` prints the markdown table.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time


def _burn(stop, idle: bool = False) -> None:
    """One busy process: what another session's work does to a core. ``idle``: at SCHED_IDLE priority it
    runs only when nothing else wants the core, so it takes no time from us; it only keeps the core
    awake (an idle VM parks its vCPUs, and waking them costs every parallel op of a 2-thread model)."""
    if idle and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31


def _timings(model_id: str, repeats: int, budget: float, threads: int) -> dict:
    from compress_core.base import timing
    from compress_core.base.recipe import PruneSpec, Recipe
    from compress_core.bench.workbench import Workbench
    from compress_core.engine import measure as m

    wb = Workbench(model_id)
    comp = wb.compress(Recipe(PruneSpec("structured", "l1", "global", 0.5)))
    shape = wb.spec.input_shape
    got: dict[str, list] = {k: [] for k in ("paired", "unpaired", "spread", "noisy", "load", "slowdown", "calls")}
    for _ in range(repeats):
        with m.torch_threads(threads):
            p = timing.paired(m.forward_fn(comp.model, shape), m.forward_fn(wb.model, shape), budget_s=budget)
        for key, value in zip(
            ("paired", "spread", "noisy", "load", "slowdown", "calls"),
            (p.speedup, p.speedup_spread, p.noisy, p.load_avg, p.slowdown, p.calls),
            strict=True,
        ):
            got[key].append(value)
        dense = m.latency(wb.model, shape, threads=threads, min_run_time=budget / 2)  # the old way:
        time.sleep(0.5)  # dense now, the model later
        alone = m.latency(comp.model, shape, threads=threads, min_run_time=budget / 2)
        got["unpaired"].append(dense.ms_p50 / alone.ms_p50)
    out = {k: statistics.median(v) for k, v in got.items() if k not in ("paired", "unpaired", "noisy")}
    return {**out, "paired": got["paired"], "unpaired": got["unpaired"], "noisy": sum(got["noisy"])}


def _beside(idle: bool | None, run):
    """``run()`` with one extra process per core beside it (``idle``: at SCHED_IDLE priority), or alone."""
    if idle is None:
        return run()
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop, idle), daemon=True) for _ in range(os.cpu_count() or 1)]
    for b in burners:
        b.start()
    try:
        time.sleep(2)
        return run()
    finally:
        stop.set()
        for b in burners:
            b.join(timeout=5)


def load_table(model_id: str, repeats: int, budget: float) -> None:
    import torch

    from compress_core.base import timing

    n = os.cpu_count()
    states = (("as found", None), (f"+{n} idle-priority", True), (f"+{n} busy", False))
    print(
        f"Speed-up of {model_id} structured l1 global 50 % vs dense, batch 1, {repeats} measurements each "
        f"(budget {budget} s). 'as found': the machine as it was (other users' work included, see the load); "
        f"'+{n} busy': one extra busy process per core; '+{n} idle-priority': the same at SCHED_IDLE, which "
        "takes no time from us but keeps the cores awake. 'unpaired': the old way, dense timed first and the "
        "model half a second later. Paired rule (timing.py): every call timed on its own; the speed-up is the "
        "fastest dense call over the fastest compressed call, all rounds pooled; the spread is that of the "
        "per-round ratios of each block's fast calls; 'slowdown': median call / lower-decile call, noisy "
        f"over {timing.SLOWDOWN_LIMIT:g}×\n"
    )
    print(
        "| threads | machine | method | median speed-up | min–max | within ± 15 % of 'as found' paired | "
        "median spread | noisy verdicts | calls per block | slowdown | load avg |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for threads in sorted({1, torch.get_num_threads()}):
        rows = [
            (name, _beside(idle, lambda t=threads: _timings(model_id, repeats, budget, t))) for name, idle in states
        ]
        ref = statistics.median(rows[0][1]["paired"])
        for name, t in rows:
            for method in ("paired", "unpaired"):
                v = t[method]
                inside = sum(abs(x / ref - 1) <= 0.15 for x in v)
                extra = (
                    f"± {t['spread']:.0%} | {t['noisy']}/{repeats} | {t['calls']:g} | {t['slowdown']:.2f}×"
                    if method == "paired"
                    else "– | – | – | –"
                )
                print(
                    f"| {threads} | {name} | {method} | {statistics.median(v):.2f}× | {min(v):.2f}–{max(v):.2f}× | "
                    f"{inside}/{len(v)} | {extra} | {t['load']:.1f} |"
                )
    print()
