"""Paired timing: interleaved rounds, the fastest-call speed-up, its spread and the noisy rule."""

from __future__ import annotations

import pytest

from compress_core.base import timing


class FakeMachine:
    """A clock that advances by the cost of each call; ``slow`` makes calls in a time window slower,
    the way another process does on a shared machine."""

    def __init__(self, slow=lambda t: 1.0) -> None:
        self.t = 0.0
        self.slow = slow
        self.log: list[str] = []

    def clock(self) -> float:
        return self.t

    def fn(self, name: str, cost_s: float):
        def call() -> None:
            self.log.append(name)
            self.t += cost_s * self.slow(self.t)

        return call


def test_paired_measures_both_and_the_speedup_is_the_median_ratio():
    m = FakeMachine()
    p = timing.paired(
        m.fn("cand", 0.001), m.fn("base", 0.003), budget_s=0.2, clock=m.clock, load=lambda: (0.5, 0.5, 0.5), cpus=2
    )
    assert p.ms_p50 == pytest.approx(1.0) and p.baseline_ms_p50 == pytest.approx(3.0)
    assert p.speedup == pytest.approx(3.0) and p.speedup_spread == pytest.approx(0.0)
    assert p.rounds % 2 == 1 and timing.MIN_ROUNDS <= p.rounds <= timing.MAX_ROUNDS
    assert not p.noisy and p.reason == ""


def test_rounds_alternate_which_model_goes_first():
    m = FakeMachine()
    p = timing.paired(
        m.fn("a", 0.01), m.fn("b", 0.01), budget_s=0.2, clock=m.clock, load=lambda: (0, 0, 0), cpus=1, rounds=3
    )
    assert p.calls == 3
    timed = m.log[-2 * p.rounds * p.calls :]  # after the warm-ups and the estimates
    blocks = [timed[i] for i in range(0, len(timed), p.calls)]
    assert blocks == ["a", "b", "b", "a", "a", "b"]


def test_a_load_burst_that_slows_both_models_leaves_the_paired_speedup_intact():
    def burst(t: float) -> float:  # another process takes the cores for 0.1 s
        return 4.0 if 0.05 < t < 0.15 else 1.0

    m = FakeMachine(burst)
    p = timing.paired(
        m.fn("cand", 0.0005), m.fn("base", 0.001), budget_s=0.3, clock=m.clock, load=lambda: (0.2, 0, 0), cpus=2
    )
    assert p.speedup == pytest.approx(2.0, rel=0.15), "the pooled fastest calls cancel the burst"


def test_the_rule_marks_a_wide_spread_or_a_busy_machine_as_noisy():
    quiet = timing.summarise([1.0] * 7, [2.0] * 7, [2.0, 2.0, 2.1, 2.0, 1.9, 2.0, 2.0], 10, 1.0, 2)
    assert not quiet.noisy
    wide = timing.summarise([1.0] * 7, [2.0] * 7, [1.0, 1.4, 2.0, 2.0, 2.0, 2.6, 3.0], 10, 1.0, 2)
    assert wide.noisy and "rounds disagree" in wide.reason and wide.speedup_spread > timing.SPREAD_LIMIT
    busy = timing.summarise([1.0] * 7, [2.0] * 7, [2.0] * 7, 10, 3.5, 2)
    assert busy.noisy and busy.reason == "machine busy: load 3.5 on 2 CPU(s)"


def test_checkpoint_runs_between_rounds_and_may_abandon_the_measurement():
    m = FakeMachine()
    ticks = []

    def checkpoint() -> None:
        ticks.append(1)
        if len(ticks) == 2:
            raise KeyboardInterrupt  # what a caller raises to yield

    with pytest.raises(KeyboardInterrupt):
        timing.paired(
            m.fn("a", 0.001), m.fn("b", 0.001), clock=m.clock, load=lambda: (0, 0, 0), cpus=1, checkpoint=checkpoint
        )
    assert len(ticks) == 2


def test_quality_prefers_quiet_then_the_smaller_spread():
    quiet = {"latency_ms_p50": 1.0, "speedup_spread": 0.05, "latency_noisy": False}
    quieter = {"latency_ms_p50": 1.1, "speedup_spread": 0.01, "latency_noisy": False}
    noisy = {"latency_ms_p50": 0.9, "speedup_spread": 0.01, "latency_noisy": True}
    legacy = {"latency_ms_p50": 0.8}
    assert timing.better(quieter, quiet) and not timing.better(quiet, quieter)
    assert timing.better(quiet, noisy) and not timing.better(noisy, quiet)
    assert timing.better(noisy, legacy) and timing.better(legacy, {"latency_ms_p50": None})
    assert timing.better(noisy, None)


def test_a_real_pair_of_callables_runs_within_its_budget():
    import time

    t0 = time.perf_counter()
    p = timing.paired(lambda: sum(range(200)), lambda: sum(range(400)), budget_s=0.1)
    assert time.perf_counter() - t0 < 2.0
    assert p.speedup > 1.0 and p.load_avg >= 0 and p.cpus >= 1


def test_budget_must_be_positive():
    with pytest.raises(ValueError, match="budget_s"):
        timing.paired(lambda: None, lambda: None, budget_s=0)


def test_a_wide_spread_buys_more_rounds_before_the_verdict():
    m = FakeMachine()
    costs = iter([0.001, 0.003] * 1000)

    def erratic() -> None:  # every other call is three times slower: the rounds cannot agree
        m.t += next(costs)

    p = timing.paired(erratic, m.fn("base", 0.002), budget_s=0.01, clock=m.clock, load=lambda: (0.1, 0, 0), cpus=2)
    assert p.calls == 1 and p.rounds == (timing.EXTRA_SETS + 1) * timing.MIN_ROUNDS
    assert p.noisy and "rounds disagree" in p.reason
    steady = timing.paired(
        m.fn("a", 0.001), m.fn("b", 0.002), budget_s=0.01, clock=m.clock, load=lambda: (0.1, 0, 0), cpus=2
    )
    assert steady.rounds == timing.MIN_ROUNDS and not steady.noisy
