"""Across recipes: what the recipes already measured for this model forget together (``study.forgets_across``):
each class's accuracy change against sparsity as one chart, and the images that flip under most recipes."""

from __future__ import annotations

import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.present import plots
from compress_core.study.forgets_across import class_damage, flip_exemplars

from . import forgets_cache as fc

MIN_RESULTS = 3  # fewer recipes say nothing about what flips "under most" of them
SHOWN = 6


def across(model_id: str, recipe: Recipe, mode: str, names: tuple[str, ...]) -> None:
    results = fc.measured_results(model_id, recipe, mode)
    st.markdown("**Across the recipes measured for this model**")
    if len(results) < MIN_RESULTS:
        st.caption(
            f"{len(results)} measured recipe(s) on these images so far: the accuracy curve fills in the background "
            f"and sweeps add theirs; this shows once {MIN_RESULTS} are here."
        )
        return
    damage = class_damage(results)
    kind = recipe.prune.kind if recipe.prune.active else None
    same = damage[damage["kind"] == kind] if kind is not None and (damage["kind"] == kind).any() else damage
    what = f"{kind} pruning" if kind is not None and len(same) < len(damage) else "every measured recipe"
    st.plotly_chart(
        plots.class_damage_lines(same, names, f"Per-class accuracy change against sparsity ({what})"),
        width="stretch",
        key="forgets_across",
        config={"displaylogo": False},
    )
    ex = flip_exemplars(results)
    listed = ", ".join(
        f"#{r['index']}"
        + (f" ({fc.name_of(names, int(r['label']))})" if r["label"] is not None else "")
        + f" {r['flips']}/{r['of']}"
        for r in ex.rows[:SHOWN]
    )
    st.caption(
        f"Filled points: the class's change is beyond noise of the overall change. {len(ex):,} image(s) flip under "
        f"more than half of these {ex.results} recipes" + (f", e.g. {listed}" if listed else "") + f" — {ex.note}."
    )
