"""Cached: what the compressed model forgets (``bench.forgets``), per (model, recipe, mode), and the pixels of
the test images that flipped.

- ``dense_probs`` (``st.cache_resource``): the dense model's softmax outputs on an eval set, once per process.
- ``forgets_dict`` (``st.cache_data``): the compressed model's outputs (the Workbench's cached compressed
  model, the one the cards measured) against those, as ``Forgets.to_dict()``.
- ``forgets_of``: the Result's own ``forgets`` where a measurement already stored one for this eval set,
  else ``forgets_dict``.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from compress_core.base.recipe import Recipe
from compress_core.bench.forgets import forgets, softmax_outputs
from compress_core.data import sets

from . import cache


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


@st.cache_resource(max_entries=8, show_spinner=False)
def dense_probs(model_id: str, mode: str) -> torch.Tensor:
    wb = cache.workbench(model_id)
    return softmax_outputs(wb.model, wb.eval_data(mode))


@st.cache_data(max_entries=64, show_spinner=False)
def forgets_dict(model_id: str, recipe_json: str, mode: str) -> dict:
    """``Forgets.to_dict()`` of the recipe's compressed model against the dense one on ``mode``'s eval set,
    with ``eval_set`` (its name) added."""
    wb = cache.workbench(model_id)
    data = wb.eval_data(mode)
    comp = cache.compressed(model_id, Recipe.from_json(recipe_json))
    out = forgets(dense_probs(model_id, mode), softmax_outputs(comp.model, data), data.y).to_dict()
    return {**out, "eval_set": data.name}


def forgets_of(model_id: str, recipe: Recipe, mode: str, res: dict | None = None) -> dict:
    """What the recipe's compressed model forgets on ``mode``'s eval set: the Result's own ``forgets`` when it
    was measured on that set, else computed here (cached)."""
    name = cache.workbench(model_id).eval_data(mode).name
    stored = None if res is None else res.get("forgets")
    if stored is not None and res is not None and res.get("eval_set") == name:
        return {**stored, "eval_set": name}
    return forgets_dict(model_id, recipe.to_json(), mode)


@st.cache_data(max_entries=32, show_spinner=False)
def pixels(model_id: str, mode: str, indices: tuple[int, ...]) -> list[np.ndarray] | None:
    """The test images at ``indices`` of ``mode``'s eval set as 8-bit pixels, or None where the dataset has
    no pixel view (``sets.to_pixels``)."""
    wb = cache.workbench(model_id)
    if wb.spec.dataset not in sets.CLASSES or wb.eval_override is not None or not indices:
        return None
    return list(sets.to_pixels(wb.spec.dataset, wb.eval_data(mode).x[list(indices)]))
