"""Gradual pruning schedules, kept apart from training (as Torch-Pruning keeps its scheduler).

- ``agp_schedule`` / ``iterative_schedule``: the sparsity after each step (Zhu & Gupta 2017's cubic
  ramp, or equal steps); ``ramp``: the same as fractions of the final sparsity.
- ``structured_step_fraction``: the share of the *current* channels one structured step removes.
- ``prune_gradually``: prune a model to its spec in ``steps`` steps with a registered pruner's
  ``step_``, calling ``after_step`` (e.g. a fine-tuning cycle) after each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from torch import nn

from compress_core.base.recipe import PruneSpec
from compress_core.base.records import Progress

if TYPE_CHECKING:
    from compress_core.engine.prune.kinds import PruneContext, Pruned, Pruner

# after_step(step number from 1, steps, the cumulative spec just reached, the state after it)
AfterStep = Callable[[int, int, PruneSpec, "Pruned"], None]


def agp_schedule(final: float, steps: int, initial: float = 0.0) -> list[float]:
    """Sparsity after each of ``steps`` pruning steps, Zhu & Gupta's cubic ramp:
    ``s_t = final + (initial - final) * (1 - t / steps) ** 3`` for t = 1..steps (ends at ``final``)."""
    _check_schedule_args(final, steps, initial)
    return [final + (initial - final) * (1.0 - t / steps) ** 3 for t in range(1, steps + 1)]


def iterative_schedule(final: float, steps: int) -> list[float]:
    """Equal sparsity steps ``final * t / steps`` for t = 1..steps, ending exactly at ``final``."""
    _check_schedule_args(final, steps, 0.0)
    return [final * t / steps for t in range(1, steps)] + [final]


def _check_schedule_args(final: float, steps: int, initial: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"a pruning schedule needs an integer number of steps >= 1; got {steps!r}")
    if not 0.0 <= initial <= final < 1.0:
        raise ValueError(f"a pruning schedule needs 0 <= initial <= final < 1; got initial={initial}, final={final}")


def ramp(schedule: str, steps: int) -> list[float]:
    """Fraction of the final sparsity reached after each step (the last is exactly 1.0)."""
    _check_schedule_args(0.0, steps, 0.0)
    if schedule == "agp":
        return [1.0 - (1.0 - t / steps) ** 3 for t in range(1, steps)] + [1.0]
    if schedule == "iterative":
        return [t / steps for t in range(1, steps)] + [1.0]
    raise ValueError(f"schedule must be 'iterative' or 'agp' for gradual pruning; got {schedule!r}")


def structured_step_fraction(previous: float, target: float) -> float:
    """Fraction of the *current* channels to remove to go from cumulative ``previous`` to ``target``."""
    if not 0.0 <= previous <= target < 1.0:
        raise ValueError(f"structured schedule needs 0 <= previous <= target < 1; got {previous}, {target}")
    return 1.0 - (1.0 - target) / (1.0 - previous)


def scaled(p: PruneSpec, r: float) -> PruneSpec:
    """``p`` with every sparsity (global and per-layer overrides) scaled by ``r``."""
    return replace(p, sparsity=p.sparsity * r, layer_sparsity=tuple((n, s * r) for n, s in p.layer_sparsity))


def prune_gradually(
    model: nn.Module,
    spec: PruneSpec,
    schedule: str,
    steps: int,
    pruner: Pruner,
    ctx: PruneContext,
    state: Pruned,
    after_step: AfterStep | None = None,
    progress: Progress | None = None,
) -> Pruned:
    """Prune ``model`` in place to ``spec`` in ``steps`` steps of ``schedule`` ("iterative" or "agp")."""
    fractions = ramp(schedule, steps)
    previous: PruneSpec | None = None
    for t, r in enumerate(fractions, start=1):
        target = spec if t == len(fractions) else scaled(spec, r)
        if progress is not None:
            progress((t - 1) / len(fractions), f"cycle {t}/{len(fractions)}, sparsity {target.sparsity:.1%}: pruning")
        state = pruner.step_(model, target, previous, state, ctx)
        previous = target
        if after_step is not None:
            after_step(t, len(fractions), target, state)
    return state
