"""Paired timing on a machine shared with busy processes: the scheduler takes the cores away in slices,
which adds the same few milliseconds to whichever call is running, fast model or slow. The speed-up
must come from the calls that ran undisturbed, and the result must still say the machine was busy."""

from __future__ import annotations

import pytest

from compress_core.base import timing


class SharedCore:
    """A fake clock on a core shared round-robin with other processes: ``ours`` seconds for us, then
    ``theirs`` seconds for them, for ever. A call needs ``cost`` seconds of our slices to finish.
    Whole nanoseconds inside, so the slices never drift."""

    def __init__(self, ours: float, theirs: float) -> None:
        self.ns = 0
        self.ours, self.period = round(ours * 1e9), round((ours + theirs) * 1e9)

    def clock(self) -> float:
        return self.ns / 1e9

    def fn(self, cost: float):
        def call() -> None:
            left = round(cost * 1e9)
            while left > 0:
                phase = self.ns % self.period
                if phase >= self.ours:  # their slice: wait until it ends
                    self.ns += self.period - phase
                    continue
                step = min(left, self.ours - phase)
                self.ns += step
                left -= step

        return call

    def sleep(self, seconds: float) -> None:
        self.ns += round(seconds * 1e9)


def _quiet() -> tuple[float, float, float]:
    return (0.1, 0.1, 0.1)  # the load average has not caught up yet: the rounds themselves must tell


@pytest.mark.parametrize("ours, theirs", [(0.002, 0.002), (0.003, 0.003), (0.0015, 0.0045), (0.004, 0.002)])
def test_descheduling_slices_do_not_move_the_speedup(ours, theirs):
    m = SharedCore(ours, theirs)
    p = timing.paired(m.fn(0.0006), m.fn(0.0012), budget_s=0.3, clock=m.clock, load=_quiet, cpus=2)
    assert p.speedup == pytest.approx(2.0, rel=0.05), "the calls that ran undisturbed carry the ratio"
    assert p.ms_p50 == pytest.approx(0.6, rel=0.05) and p.baseline_ms_p50 == pytest.approx(1.2, rel=0.05)


def test_a_busy_machine_is_still_marked_noisy_when_the_load_average_lags():
    m = SharedCore(0.002, 0.002)
    p = timing.paired(m.fn(0.0006), m.fn(0.0012), budget_s=0.3, clock=m.clock, load=_quiet, cpus=2)
    assert p.noisy and "other work held the cores" in p.reason
    assert p.slowdown > timing.SLOWDOWN_LIMIT


def test_a_quiet_machine_has_no_slowdown():
    m = SharedCore(1.0, 0.0)
    p = timing.paired(m.fn(0.0006), m.fn(0.0012), budget_s=0.3, clock=m.clock, load=_quiet, cpus=2)
    assert p.speedup == pytest.approx(2.0) and p.slowdown == pytest.approx(1.0)
    assert not p.noisy and p.reason == ""


def test_blocks_hold_several_calls_when_the_budget_allows():
    m = SharedCore(1.0, 0.0)
    p = timing.paired(m.fn(0.003), m.fn(0.003), budget_s=0.3, clock=m.clock, load=_quiet, cpus=2)
    assert p.calls >= timing.CALLS_TARGET // 2 and p.rounds >= timing.MIN_ROUNDS


def test_one_slow_first_call_does_not_shrink_the_blocks():
    m = SharedCore(1.0, 0.0)
    costs = iter([0.003, 0.012] + [0.003] * 10_000)  # warm-up, then a first timed call hit by a slice

    def first_slow() -> None:
        m.sleep(next(costs))

    p = timing.paired(first_slow, m.fn(0.003), budget_s=0.3, clock=m.clock, load=_quiet, cpus=2)
    assert p.calls >= timing.CALLS_TARGET // 2


def test_the_verdict_names_the_slowdown():
    noisy, reason = timing.verdict(0.01, 0.5, 2, slowdown=2.4)
    assert noisy and reason == "other work held the cores: the median call took 2.4× the fast ones (limit 1.25×)"
    assert timing.verdict(0.01, 0.5, 2, slowdown=1.1) == (False, "")
    assert timing.verdict(0.01, 0.5, 2) == (False, "")  # callers that know no slowdown


def test_summarise_keeps_its_positional_form_and_records_the_slowdown():
    old = timing.summarise([1.0] * 7, [2.0] * 7, [2.0] * 7, 10, 0.5, 2)
    assert old.slowdown == 1.0 and not old.noisy
    busy = timing.summarise([1.0] * 7, [2.0] * 7, [2.0] * 7, 10, 0.5, 2, slowdown=3.0)
    assert busy.noisy and busy.slowdown == 3.0 and busy.to_dict()["slowdown"] == 3.0


def test_threads_runnable_between_rounds_mark_a_busy_machine_before_the_load_average_does():
    m = SharedCore(1.0, 0.0)  # the calls themselves ran undisturbed
    readings = []

    def runnable() -> float:  # two busy processes beside this thread
        readings.append(3.0)
        return 3.0

    p = timing.paired(m.fn(0.001), m.fn(0.002), budget_s=0.1, clock=m.clock, load=_quiet, cpus=2, runnable=runnable)
    assert len(readings) == p.rounds, "read once after every round"
    assert (
        p.runnable == 3.0 and p.noisy and p.reason == "machine busy: 3 threads runnable on 2 CPU(s) during the rounds"
    )
    alone = timing.paired(
        m.fn(0.001), m.fn(0.002), budget_s=0.1, clock=m.clock, load=_quiet, cpus=2, runnable=lambda: 1
    )
    assert alone.runnable == 1 and not alone.noisy


def test_a_fake_load_reads_no_runnable_threads_and_a_real_one_does():
    m = SharedCore(1.0, 0.0)
    fake = timing.paired(m.fn(0.001), m.fn(0.002), budget_s=0.1, clock=m.clock, load=_quiet, cpus=2)
    assert fake.runnable is None
    n = timing.runnable_now()
    assert n is None or n >= 1  # this thread is running while it reads
    assert timing.verdict(0.01, 3.5, 2, runnable=4) == (
        True,
        "machine busy: 4 threads runnable on 2 CPU(s) during the rounds",
    )  # said once, by the count taken during the rounds
    assert timing.verdict(0.01, 3.5, 2) == (True, "machine busy: load 3.5 on 2 CPU(s)")  # no count: the average


def test_a_lagging_load_average_does_not_mark_a_quiet_measurement_noisy():
    # A browser run just ended: the 1-minute average still reads 3.5 on 2 CPUs, while only this thread runs.
    assert timing.verdict(0.01, 3.5, 2, runnable=1) == (False, "")


def test_blocks_grow_when_the_rounds_show_the_estimate_was_slowed():
    m = SharedCore(1.0, 0.0)
    costs = iter([0.003] + [0.03] * 3 + [0.003] * 10_000)  # warm-up, then every estimate call hit by a slice

    def slowed_at_first() -> None:
        m.sleep(next(costs))

    p = timing.paired(slowed_at_first, m.fn(0.003), budget_s=0.3, clock=m.clock, load=_quiet, cpus=2)
    assert p.calls >= timing.CALLS_TARGET // 2, "planned 1 call per block from the estimate, grown since"
    assert p.speedup == pytest.approx(1.0)
