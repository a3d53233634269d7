"""How a recipe is measured: one frozen, hashable ``MeasureSettings`` that is the Workbench's cache key.

``mode`` is the evaluation set (``quick`` or ``full``), ``batch`` and ``threads`` the latency batch and
torch thread count (``None``: this process's, resolved once by ``resolved``), ``budget_s`` the timing
budget and ``latency`` whether latency is measured at all. Two settings that differ only in ``budget_s``
share one cached Result: the budget says how long to time, not what was measured.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from compress_core.base.recipe import Recipe


@dataclass(frozen=True)
class MeasureSettings:
    """One measurement's settings; ``key(recipe)`` is the cache key of that recipe measured so."""

    mode: str = "quick"
    batch: int = 1
    threads: int | None = None  # None: this process's torch thread count (``resolved``)
    budget_s: float = 0.3
    latency: bool = True

    def resolved(self) -> MeasureSettings:
        """These settings with ``threads`` filled in (this process's torch thread count when None)."""
        return self if self.threads else dataclasses.replace(self, threads=torch.get_num_threads())

    def key(self, recipe: Recipe) -> tuple[str, str, int, int, bool]:
        """The cache key of ``recipe`` measured with these settings (the budget is not part of it)."""
        return (recipe.to_json(), self.mode, self.batch, self.threads or torch.get_num_threads(), self.latency)

    def replace(self, **changes: Any) -> MeasureSettings:
        return dataclasses.replace(self, **changes)


def checked(settings: MeasureSettings | None, where: str) -> MeasureSettings:
    """``settings``, or ``MeasureSettings()`` for None; a TypeError naming ``where`` for anything else (a mode
    string passed where the settings go, as the calls took before they took settings)."""
    if settings is None:
        return MeasureSettings()
    if not isinstance(settings, MeasureSettings):
        raise TypeError(f"{where}() takes MeasureSettings; got {type(settings).__name__} {settings!r}")
    return settings
