"""Paired latency: a compressed model and its dense baseline, timed interleaved in the same window.

Why paired. On a shared machine (a Streamlit server with several sessions on 2 cores, a test run
beside a benchmark) the speed of the CPU changes from one second to the next. Timing the dense
baseline once per process and every compressed model later divides two numbers taken under
different loads: a 50 % structured model once read "+225 % slower". Timed in alternating rounds,
both models meet the same load, and the ratio of each round cancels most of it.

The rule (``paired``):

1. Warm both callables up (one call each), then estimate one call of each.
2. Run ``rounds`` rounds (odd, so the median is a real round; ``MIN_ROUNDS``..``MAX_ROUNDS``, as many
   as fit ``budget_s``). A round times a block of ``calls`` back-to-back calls of the candidate and
   a block of ``calls`` calls of the baseline; odd rounds time the baseline first (ABBA order), so
   a drift in machine speed hits both. ``calls`` makes a block last about ``budget_s / (2 rounds)``.
3. Per round: per-call time of each block, and the ratio ``baseline / candidate``.
4. Report the median per-call time of each (with its IQR), the speed-up as the **median of the
   per-round ratios** (not the ratio of the medians), and its spread: half the interquartile range
   of the per-round ratios divided by their median (``0.05`` reads "± 5 %"). When that spread is
   over the limit, up to ``EXTRA_SETS`` more sets of rounds are run first (at most 3 × the budget
   in all): the spread of a busy machine stays wide, but the median of more rounds moves less.
5. Verdict: **noisy** when the spread exceeds ``SPREAD_LIMIT`` (± 10 %), or when the 1-minute load
   average (``os.getloadavg()``, read after the rounds) exceeds ``LOAD_LIMIT`` runnable threads per
   CPU (``os.cpu_count()``): more runnable threads than cores means something else competed for
   them, even if the ratios happen to agree. The load average counts this process's own threads too,
   so a lone measurement on an idle machine stays under the limit. ``reason`` says which rule fired.

A noisy result is kept but marked (card, store, report); measuring it again keeps the better of the
two (``better``): a quiet one beats a noisy one, then the smaller spread wins.

Pure: no torch, no Streamlit. The clock, the load reader and a ``checkpoint`` called between rounds
(the dashboard's "yield to the user's next move" hook) are parameters.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

SPREAD_LIMIT = 0.10  # half-IQR of the per-round ratios, relative to their median
LOAD_LIMIT = 1.0  # 1-minute load average per CPU
MIN_ROUNDS, MAX_ROUNDS = 7, 21
MAX_CALLS = 10_000  # per block; a very fast callable never loops for ever
EXTRA_SETS = 2  # more sets of rounds when the first set disagrees too much


@dataclass(frozen=True)
class Paired:
    """One paired measurement: candidate vs baseline, per-call milliseconds and the speed-up."""

    ms_p50: float  # candidate (the compressed model): median per-call time over the rounds
    ms_iqr: float
    baseline_ms_p50: float  # baseline (the dense model), same rounds
    baseline_ms_iqr: float
    speedup: float  # median over rounds of baseline / candidate
    speedup_spread: float  # half-IQR of the per-round ratios / their median
    rounds: int
    calls: int  # calls per block
    load_avg: float  # 1-minute load average after the rounds
    cpus: int
    noisy: bool
    reason: str  # why it is noisy, in words; "" when it is not

    def to_dict(self) -> dict:
        return asdict(self)


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def verdict(spread: float, load_avg: float, cpus: int) -> tuple[bool, str]:
    """(noisy, reason) by the rule in the module docstring."""
    reasons = []
    if not math.isfinite(spread) or spread > SPREAD_LIMIT:
        reasons.append(f"rounds disagree by ± {spread:.0%} (limit ± {SPREAD_LIMIT:.0%})")
    if load_avg > LOAD_LIMIT * max(cpus, 1):
        reasons.append(f"machine busy: load {load_avg:.1f} on {cpus} CPU(s)")
    return bool(reasons), "; ".join(reasons)


def _plan(first_call_s: float, budget_s: float, rounds: int | None) -> tuple[int, int]:
    """(rounds, calls per block) so that the whole measurement takes about ``budget_s``."""
    per_call = max(first_call_s, 1e-7)
    if rounds is None:
        rounds = int(budget_s / (2 * per_call))
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, rounds))
    rounds = rounds if rounds % 2 else rounds + 1
    calls = max(1, min(MAX_CALLS, int(budget_s / (2 * rounds * per_call))))
    return rounds, calls


def paired(
    candidate: Callable[[], object],
    baseline: Callable[[], object],
    budget_s: float = 0.3,
    rounds: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    load: Callable[[], tuple[float, float, float]] = os.getloadavg,
    cpus: int | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> Paired:
    """Time ``candidate`` against ``baseline`` in interleaved rounds (see the module docstring)."""
    if not budget_s > 0:
        raise ValueError(f"budget_s must be a positive number of seconds; got {budget_s!r}")
    cpus = cpus or os.cpu_count() or 1
    first = []
    for fn in (candidate, baseline):
        fn()  # warm-up: the first call per shape is much slower
        t0 = clock()
        fn()
        first.append(clock() - t0)
    n_rounds, calls = _plan(max(first), budget_s, rounds)
    cand_ms: list[float] = []
    base_ms: list[float] = []
    ratios: list[float] = []
    for _ in range(EXTRA_SETS + 1):
        _rounds(candidate, baseline, n_rounds, calls, clock, checkpoint, cand_ms, base_ms, ratios)
        result = summarise(cand_ms, base_ms, ratios, calls, load()[0], cpus)
        if result.speedup_spread <= SPREAD_LIMIT or rounds is not None:
            break
    return result


def _rounds(
    candidate: Callable[[], object],
    baseline: Callable[[], object],
    n_rounds: int,
    calls: int,
    clock: Callable[[], float],
    checkpoint: Callable[[], None] | None,
    cand_ms: list[float],
    base_ms: list[float],
    ratios: list[float],
) -> None:
    """Append ``n_rounds`` interleaved rounds (ABBA order) to the three lists."""
    for r in range(n_rounds):
        order = ((baseline, base_ms), (candidate, cand_ms)) if r % 2 else ((candidate, cand_ms), (baseline, base_ms))
        for fn, out in order:
            t0 = clock()
            for _ in range(calls):
                fn()
            out.append(max(clock() - t0, 1e-9) / calls * 1e3)
        ratios.append(base_ms[-1] / cand_ms[-1])
        if checkpoint is not None:
            checkpoint()


def summarise(
    cand_ms: list[float], base_ms: list[float], ratios: list[float], calls: int, load_avg: float, cpus: int
) -> Paired:
    """The ``Paired`` record of per-round timings (exposed so the rule can be tested without a clock)."""
    c1, c2, c3 = _quartiles(cand_ms)
    b1, b2, b3 = _quartiles(base_ms)
    r1, r2, r3 = _quartiles(ratios)
    spread = (r3 - r1) / 2 / r2 if r2 > 0 else math.inf
    noisy, reason = verdict(spread, load_avg, cpus)
    return Paired(
        ms_p50=c2,
        ms_iqr=c3 - c1,
        baseline_ms_p50=b2,
        baseline_ms_iqr=b3 - b1,
        speedup=r2,
        speedup_spread=spread,
        rounds=len(ratios),
        calls=calls,
        load_avg=float(load_avg),
        cpus=cpus,
        noisy=noisy,
        reason=reason,
    )


def quality(result: Mapping) -> tuple[int, float]:
    """Sort key of a latency measurement in a ``Result.to_dict()``: smaller is better.

    Quiet before noisy, then the smaller spread. A result with no latency, or one written before
    paired timing (no spread recorded), ranks last."""
    if result.get("latency_ms_p50") is None:
        return (3, math.inf)
    spread = result.get("speedup_spread")
    if spread is None or not math.isfinite(spread):
        return (2, math.inf)
    return (1 if result.get("latency_noisy") else 0, float(spread))


def better(new: Mapping, old: Mapping | None) -> bool:
    """Whether the latency measurement in ``new`` should replace the one in ``old`` (ties: the newer)."""
    return old is None or quality(new) <= quality(old)


# The fields of a Result that one latency measurement sets (kept or replaced together).
LATENCY_FIELDS = (
    "latency_ms_p50",
    "latency_ms_iqr",
    "latency_kernels",
    "dense_latency_ms_p50",
    "speedup",
    "speedup_spread",
    "latency_noisy",
    "latency_load",
    "latency_note",
)
