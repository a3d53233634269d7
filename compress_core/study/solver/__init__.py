"""Ask it backwards: the best recipe under a budget, found per layer and verified by measurement.

- ``budget``: ``Budget`` (limits: size, latency, MACs, accuracy drop) and ``SearchSpace`` (per-layer
  options), with the infeasibility messages;
- ``profile``: the per-layer option table (measured accuracy cost with recovery, exact bytes and MACs);
- ``allocate``: the multiple-choice knapsack (Lagrangian relaxation + greedy fill);
- ``candidates``: allocations -> recipes that meet the size exactly, with predicted numbers;
- ``reuse``: the results store's rows (a sweep's, an earlier solve's) that stand in for measurements;
- ``solve``: the entry point (uniform grid, profile, candidates measured, the best verified).
"""

from compress_core.study.solver.allocate import allocate, exhaustive
from compress_core.study.solver.budget import Budget, SearchSpace, meets, violations
from compress_core.study.solver.solve import Solution, solutions_frame, solve

__all__ = [
    "Budget",
    "SearchSpace",
    "Solution",
    "allocate",
    "exhaustive",
    "meets",
    "solutions_frame",
    "solve",
    "violations",
]
