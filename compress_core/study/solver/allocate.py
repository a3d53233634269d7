"""Per-layer allocation: a multiple-choice knapsack solved by Lagrangian relaxation, then a greedy fill.

Every layer i picks exactly one option j from its own list; option j costs ``objective[i][j]`` (what to
minimise: the predicted accuracy cost, or bytes under an accuracy floor) and uses ``resources[i][j][k]``
of each limited resource k (bytes, MACs, predicted accuracy drop, ...), additive over layers, with
``fixed[k]`` on top (the file header, the layers outside the table). Minimise the summed objective
subject to ``sum_i resources[i][j_i][k] + fixed[k] <= limits[k]`` for every k.

Method (Everett 1963, "Generalized Lagrange multiplier method for solving problems of optimum allocation
of resources"; as bit allocation: Shoham & Gersho 1988, "Efficient bit allocation for an arbitrary set of
quantizers"; as mixed-precision quantization: HAWQ-V3's integer program / the Pareto-frontier knapsack of
Yao et al. 2021): with one multiplier ``lam`` on the normalised resource use ``w = sum_k r_k / limit_k``,
the relaxed problem splits into one independent choice per layer, ``argmin_j objective + lam * w``;
bisection finds the smallest ``lam`` whose choices meet every limit (the solutions move along each
layer's lower convex hull as ``lam`` grows). With several limits the normalised uses are weighted, the
weight of a limit doubled while the lightest choice breaks it (``_balance``; where no weighting works, a
repair by single-layer moves, ``_repair``). The relaxation leaves slack (its duality gap), so a greedy
pass then upgrades, one layer at a time, to the option with the best objective saved per normalised
resource added that still fits, until none does. Deterministic: ties go to the lower option index, the
lower layer index first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

Resources = Sequence[Sequence[dict[str, float]]]
_BISECT_STEPS = 60
_ALPHA_ROUNDS = 24


def _weight(r: dict[str, float], limits: dict[str, float], alpha: dict[str, float] | None = None) -> float:
    return sum((alpha or {}).get(k, 1.0) * r.get(k, 0.0) / lim for k, lim in limits.items() if lim > 0)


def _totals(choice: Sequence[int], resources: Resources, fixed: dict[str, float], keys) -> dict[str, float]:
    return {k: fixed.get(k, 0.0) + sum(resources[i][j].get(k, 0.0) for i, j in enumerate(choice)) for k in keys}


def fits(choice: Sequence[int], resources: Resources, limits: dict[str, float], fixed: dict[str, float]) -> bool:
    totals = _totals(choice, resources, fixed, limits)
    return all(totals[k] <= lim * (1 + 1e-12) for k, lim in limits.items())


def _relaxed(lam: float, objective, resources: Resources, limits: dict[str, float], alpha) -> list[int]:
    choice = []
    for obj, res in zip(objective, resources, strict=True):
        scores = [o + lam * _weight(r, limits, alpha) for o, r in zip(obj, res, strict=True)]
        choice.append(min(range(len(scores)), key=scores.__getitem__))  # ties: the first (lowest) index
    return choice


def _lightest(resources: Resources, limits: dict[str, float], alpha) -> list[int]:
    out = []
    for res in resources:
        weights = [_weight(r, limits, alpha) for r in res]
        out.append(min(range(len(weights)), key=weights.__getitem__))
    return out


def _balance(resources: Resources, limits: dict[str, float], fixed: dict[str, float]) -> dict[str, float] | None:
    """Weights on the normalised resources under which the lightest choice meets every limit: start equal
    and double the weight of each limit the lightest choice breaks (several limits pull apart); None if
    ``_ALPHA_ROUNDS`` doublings find none."""
    alpha = dict.fromkeys(limits, 1.0)
    for _ in range(_ALPHA_ROUNDS):
        light = _lightest(resources, limits, alpha)
        totals = _totals(light, resources, fixed, limits)
        broken = [k for k, lim in limits.items() if totals[k] > lim * (1 + 1e-12)]
        if not broken:
            return alpha
        for k in broken:
            alpha[k] *= 2.0
    return None


def _overshoot(choice: Sequence[int], resources: Resources, limits: dict[str, float], fixed) -> float:
    totals = _totals(choice, resources, fixed, limits)
    return sum(max(0.0, totals[k] / lim - 1.0) for k, lim in limits.items() if lim > 0)


def _repair(choice: list[int], resources: Resources, limits: dict[str, float], fixed) -> list[int]:
    """Single-layer moves that cut the summed relative overshoot most, until it is 0 or no move cuts it."""
    choice = list(choice)
    over = _overshoot(choice, resources, limits, fixed)
    while over > 0:
        moves = [
            (_overshoot([*choice[:i], j, *choice[i + 1 :]], resources, limits, fixed), i, j)
            for i, res in enumerate(resources)
            for j in range(len(res))
            if j != choice[i]
        ]
        best = min(moves, default=None)
        if best is None or best[0] >= over - 1e-15:
            return choice
        over, choice[best[1]] = best[0], best[2]
    return choice


def lagrangian(objective, resources: Resources, limits: dict[str, float], fixed: dict[str, float]) -> list[int] | None:
    """The relaxed choice at the smallest multiplier that meets ``limits``; None if no weighting of the
    limits makes even the lightest options fit."""
    alpha = _balance(resources, limits, fixed)
    if alpha is None:  # no weighted-lightest choice fits: repair one, one layer at a time
        repaired = _repair(_lightest(resources, limits, None), resources, limits, fixed)
        return repaired if fits(repaired, resources, limits, fixed) else None
    choice = _relaxed(0.0, objective, resources, limits, alpha)
    if fits(choice, resources, limits, fixed):
        return choice
    spread = max((max(o) - min(o) for o in objective), default=0.0) or 1.0
    lo, hi = 0.0, spread
    while not fits(_relaxed(hi, objective, resources, limits, alpha), resources, limits, fixed):
        hi *= 2.0
        if hi > spread * 2.0**80:
            return _lightest(resources, limits, alpha)
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2.0
        if fits(_relaxed(mid, objective, resources, limits, alpha), resources, limits, fixed):
            hi = mid
        else:
            lo = mid
    return _relaxed(hi, objective, resources, limits, alpha)


def greedy_fill(
    choice: list[int], objective, resources: Resources, limits: dict[str, float], fixed: dict[str, float]
) -> list[int]:
    """Spend the slack: repeatedly take the single-layer move that saves the most objective per added
    normalised resource (or saves objective and adds none) while every limit still holds."""
    choice = list(choice)
    while True:
        best, best_key = None, None
        for i, (obj, res) in enumerate(zip(objective, resources, strict=True)):
            here_o, here_w = obj[choice[i]], _weight(res[choice[i]], limits)
            for j in range(len(obj)):
                gain = here_o - obj[j]
                if j == choice[i] or gain <= 1e-15:
                    continue
                trial = [*choice[:i], j, *choice[i + 1 :]]
                if not fits(trial, resources, limits, fixed):
                    continue
                added = _weight(res[j], limits) - here_w
                ratio = math.inf if added <= 0 else gain / added
                key = (ratio, gain, -i, -j)
                if best_key is None or key > best_key:
                    best, best_key = (i, j), key
        if best is None:
            return choice
        choice[best[0]] = best[1]


def allocate(objective, resources: Resources, limits: dict[str, float], fixed: dict[str, float]) -> list[int] | None:
    """Lagrangian relaxation, then the greedy fill; None when no choice meets ``limits``."""
    if len(objective) != len(resources):
        raise ValueError("objective and resources need one entry per layer")
    choice = lagrangian(objective, resources, limits, fixed)
    return None if choice is None else greedy_fill(choice, objective, resources, limits, fixed)


def exhaustive(objective, resources: Resources, limits: dict[str, float], fixed: dict[str, float]) -> list[int] | None:
    """The exact optimum by enumeration (tests and tiny tables only: the product of the option counts)."""
    best, best_obj = None, math.inf
    for choice in itertools.product(*(range(len(o)) for o in objective)):
        if fits(choice, resources, limits, fixed):
            total = sum(objective[i][j] for i, j in enumerate(choice))
            if total < best_obj - 1e-15:
                best, best_obj = list(choice), total
    return best
