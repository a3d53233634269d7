"""Pruning: importance criteria, unstructured masks, structured (channel) removal and gradual schedules.

Importing the package registers every prune kind (``kinds.PRUNERS``) and criterion
(``criteria.CRITERIA``).

- ``layers``: which layers prune (Conv2d/Linear minus a skip list); ``kinds``: the Pruner interface
  and registry; ``criteria``: the importance registry; ``group_stats``: hook statistics for scoring
  channel groups; ``unstructured`` / ``structured``: the two registered kinds; ``scatter``: option-A
  shortcuts as index maps; ``skeleton``: the one way to rebuild a pruned architecture;
  ``schedule``: iterative and AGP schedules.
"""

from compress_core.engine.prune import structured, unstructured
from compress_core.engine.prune.kinds import PRUNERS, PruneContext, Pruned, Pruner, get_pruner

__all__ = ["PRUNERS", "PruneContext", "Pruned", "Pruner", "get_pruner", "structured", "unstructured"]
