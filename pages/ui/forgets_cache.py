"""What the compressed model forgets (``bench.forgets``), kept per (model, recipe, mode) for every session,
and the pixels of the test images that flipped.

- ``forgets_of``: the Result's own ``forgets`` where a measurement already stored one for this eval set, else
  the Workbench's evaluation of the recipe on that set (its cached compressed model, the one the cards
  measured; every evaluation computes ``forgets`` from the predictions it makes), as ``Forgets.to_dict()``
  with ``eval_set`` added.
- The Forgets are kept in a bounded LRU (``st.cache_resource``), filled outside any cached function so that
  the evaluation can report each batch to a progress bar: every report is a point where the user's next
  slider move takes over (``explore_panels``' module docstring), leaving nothing half-cached.
"""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from compress_core.base.lru import LRU
from compress_core.base.recipe import Recipe
from compress_core.base.records import Progress
from compress_core.base.settings import MeasureSettings
from compress_core.data import sets

from . import cache


@st.cache_resource(max_entries=1, show_spinner=False)
def _kept() -> LRU[dict]:
    """(model, recipe JSON, mode) -> the Forgets dict."""
    return LRU(64)


def labelled(model_id: str, mode: str) -> bool:
    return bool(getattr(cache.workbench(model_id).eval_data(mode), "labelled", True))


def full_size(model_id: str) -> int:
    """How many images the full test set holds (the eval set itself for the user's own images)."""
    wb = cache.workbench(model_id)
    if wb.eval_override is not None or wb.spec.dataset not in sets.CLASSES:
        return len(wb.eval_data("full"))
    return sets.test_size(wb.spec.dataset)


def class_names(model_id: str) -> tuple[str, ...]:
    """The dataset's class names (indices as text for a dataset without names)."""
    wb = cache.workbench(model_id)
    names = sets.CLASSES.get(wb.spec.dataset)
    if names is None:
        names = getattr(wb.eval_data("quick"), "classes", ()) or ()
    return tuple(names)


def name_of(names: tuple[str, ...], k: int) -> str:
    return names[k] if 0 <= k < len(names) else str(k)


def known(model_id: str, recipe: Recipe, mode: str, res: dict | None = None) -> dict | None:
    """The Forgets of the recipe if they are at hand (the Result's own, or computed before), else None."""
    name = cache.workbench(model_id).eval_data(mode).name
    stored = None if res is None else res.get("forgets")
    if stored is not None and res is not None and res.get("eval_set") == name:
        return {**stored, "eval_set": name}
    return _kept().get((model_id, recipe.to_json(), mode))


def forgets_of(
    model_id: str, recipe: Recipe, mode: str, res: dict | None = None, progress: Progress | None = None
) -> dict:
    """What the recipe's compressed model forgets on ``mode``'s eval set (``known``, else the Workbench's
    evaluation on that set, without latency, and kept); ``progress`` hears each batch of it."""
    hit = known(model_id, recipe, mode, res)
    if hit is not None:
        return hit
    measured = cache.workbench(model_id).evaluate(recipe, MeasureSettings(mode, latency=False), progress, oneshot=False)
    if measured.forgets is None:
        raise ValueError(f"{measured.eval_set}: no predictions to compare")
    out = {**measured.forgets, "eval_set": measured.eval_set}
    _kept().put((model_id, recipe.to_json(), mode), out)
    return out


@st.cache_data(max_entries=32, show_spinner=False)
def pixels(model_id: str, mode: str, indices: tuple[int, ...]) -> list[np.ndarray] | None:
    """The test images at ``indices`` of ``mode``'s eval set as 8-bit pixels, or None where the dataset has
    no pixel view (``sets.to_pixels``)."""
    wb = cache.workbench(model_id)
    if wb.spec.dataset not in sets.CLASSES or wb.eval_override is not None or not indices:
        return None
    return list(sets.to_pixels(wb.spec.dataset, wb.eval_data(mode).x[list(indices)]))


def measured_results(model_id: str, recipe: Recipe, mode: str) -> list[dict]:
    """The results already measured for this model on ``mode``'s eval set that carry ``forgets``: the accuracy
    curve's points of the recipe's method (Explore's background fill) and the stored sweep rows; nothing is
    measured here. Each once (by recipe), the curve's first."""
    out: dict[str, dict] = {}
    for r in cache.curve_recipes(recipe):
        res = cache.peek(model_id, r, mode)
        if res is not None and res.get("forgets"):
            out.setdefault(r.to_json(), res)
    stored = cache.store_frame(model_id, mode)
    if "forgets" in stored.columns:
        for _, row in stored.iterrows():
            text = row["forgets"]
            if isinstance(text, str) and text and row["recipe_json"] not in out:
                recipe_dict = json.loads(row["recipe_json"])
                out[row["recipe_json"]] = {
                    "recipe": recipe_dict,
                    "recipe_label": row["label"],
                    "forgets": json.loads(text),
                }
    return list(out.values())
