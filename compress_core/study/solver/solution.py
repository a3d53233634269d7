"""What ``solve`` returns: the ``Solution`` record, its chart rows and writing its artefact."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from compress_core.base.recipe import Recipe
from compress_core.bench.workbench import Workbench
from compress_core.study.sweep import mark_pareto


@dataclass
class Solution:
    model_id: str
    budget: dict
    space: dict
    mode: str
    recipe: dict | None  # the returned recipe (None when nothing meets the budget)
    result: dict | None  # its verified measurement (evaluate --json keys)
    predicted: dict  # the solver's own numbers for it: accuracy, size_bytes, macs, latency_ms_p50
    prediction_error: dict  # measured minus predicted, per quantity
    uniform_best: dict | None  # the best uniform grid recipe under the same budget, measured, or None
    feasible: bool
    infeasible: list[str] = field(default_factory=list)  # one sentence per broken limit
    candidates: list[dict] = field(default_factory=list)  # every measured candidate (quick)
    uniform_rows: list[dict] = field(default_factory=list)  # the uniform grid and stored uniform rows (quick)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # what the results store gave instead of a measurement (``reuse``): grid, grid_from_store,
    # extra_from_store (stored uniform rows beside the grid), verified_from_store, retimed
    reuse: dict = field(default_factory=dict)

    @classmethod
    def infeasible_before_measuring(
        cls, model_id: str, budget: dict, space: dict, mode: str, reasons: list[str]
    ) -> Solution:
        return cls(
            model_id=model_id,
            budget=budget,
            space=space,
            mode=mode,
            recipe=None,
            result=None,
            predicted={},
            prediction_error={},
            uniform_best=None,
            feasible=False,
            infeasible=reasons,
        )

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def save(sol: Solution, path: str | Path, workbench: Workbench | None = None) -> int:
    """Write the answer's artefact file; its bytes (equal to the verified ``size_bytes``)."""
    from compress_core.files.artifact import save_artifact

    if sol.recipe is None:
        raise ValueError("no recipe meets the budget, so there is no artefact to save")
    wb = workbench or Workbench(sol.model_id)
    return save_artifact(wb.compressed(Recipe.from_dict(sol.recipe)), wb.artifact_id, path)


def solutions_frame(sol: Solution, x: str = "size_bytes") -> pd.DataFrame:
    """Tidy rows for the Budget chart (``plots.budget_chart``): the uniform grid with its Pareto front on
    ``x``, the measured candidates, the best uniform recipe and the verified answer."""
    keep = ["series", "label", "accuracy", "size_bytes", "latency_ms_p50", "macs", "pareto"]
    rows = [{**r, "series": "uniform grid"} for r in sol.uniform_rows]
    rows += [{**c, "series": "solver candidate"} for c in sol.candidates]
    if sol.uniform_best is not None:
        rows.append({**sol.uniform_best, "series": "uniform best", "label": sol.uniform_best["recipe_label"]})
    if sol.result is not None:
        rows.append({**sol.result, "series": "solver (verified)", "label": sol.result["recipe_label"]})
    df = pd.DataFrame(rows).reindex(columns=keep)
    grid = df["series"] == "uniform grid"
    df["pareto"] = False
    if grid.any() and df.loc[grid, x].notna().any():
        df.loc[grid, "pareto"] = mark_pareto(df[grid], x=x).to_numpy()
    return df
