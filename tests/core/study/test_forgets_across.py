"""Forgets across recipes: the images that flip under most of them, per-class damage as a tidy frame, and the
results store keeping ``forgets`` as JSON text beside rows that do not have it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.bench.forgets import forgets
from compress_core.study.forgets_across import DAMAGE_COLUMNS, class_damage, flip_exemplars
from compress_core.study.store import ResultStore

LABELS = torch.tensor([0, 0, 1, 1])
DENSE = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])  # all right


def _result(sparsity: float, wrong: list[int], flipped_max: int = 100) -> dict:
    """A Result dict of an unstructured recipe whose compressed model gets the images ``wrong`` wrong."""
    comp = DENSE.clone()
    for i in wrong:
        comp[i] = comp[i].flip(0)
    recipe = Recipe(PruneSpec("unstructured", "l1", "global", sparsity))
    f = forgets(DENSE, comp, LABELS, flipped_max=flipped_max)
    return {"recipe": recipe.to_dict(), "recipe_label": recipe.label(), "forgets": f.to_dict()}


def test_exemplars_are_the_images_flipping_under_most_recipes():
    results = [_result(0.5, [0]), _result(0.7, [0, 2]), _result(0.9, [0, 2, 3]), {"recipe_label": "no forgets"}]
    ex = flip_exemplars(results)
    assert ex.results == 3 and ex.approximate and not ex.lower_bound
    assert [(r["index"], r["label"], r["flips"], r["of"]) for r in ex.rows] == [(0, 0, 3, 3), (2, 1, 2, 3)]  # 3: 1/3
    assert ex.rows[0]["right_to_wrong"] == 3 and ex.rows[0]["wrong_to_right"] == 0
    assert list(ex.frame()["index"]) == [0, 2] and len(ex) == 2
    assert len(flip_exemplars(results, min_share=0.0)) == 3


def test_flip_bits_count_every_flip_even_past_the_capped_list():
    ex = flip_exemplars([_result(0.5, [0, 2], flipped_max=1), _result(0.9, [0, 2], flipped_max=1)])
    assert not ex.lower_bound and [r["index"] for r in ex.rows] == [0, 2] and ex.rows[0]["flips"] == 2


def test_exemplars_say_lower_bound_when_only_a_capped_list_was_there():
    capped = _result(0.5, [0, 2], flipped_max=1)
    capped["forgets"] = {k: v for k, v in capped["forgets"].items() if not k.endswith("_bits")}  # an older record
    ex = flip_exemplars([capped, _result(0.9, [0, 2])])
    assert ex.lower_bound and ex.capped_results == [Recipe(PruneSpec("unstructured", "l1", "global", 0.5)).label()]
    assert "approximate" in ex.note and "lower bound" in ex.note
    with pytest.raises(ValueError, match="min_share"):
        flip_exemplars([], min_share=1.0)


def test_class_damage_is_one_tidy_row_per_result_and_class():
    df = class_damage([_result(0.5, [0]), _result(0.9, [0, 1, 2]), {"recipe_label": "no forgets"}])
    assert list(df.columns) == DAMAGE_COLUMNS and len(df) == 4
    assert list(df["sparsity"]) == [0.5, 0.5, 0.9, 0.9] and set(df["kind"]) == {"unstructured"}
    assert list(df["class"]) == [0, 1, 0, 1]
    assert list(df["change_pp"]) == pytest.approx([-50.0, 0.0, -100.0, -50.0])
    assert df["significant"].dtype == bool and df["change_pp"].dtype == "float64"
    assert class_damage([]).columns.tolist() == DAMAGE_COLUMNS


def test_the_store_keeps_forgets_as_json_text_and_old_rows_still_read(tmp_path):
    base = {"model": "lenet5-mnist", "accuracy": 0.9, "size_bytes": 10, "eval_samples": 4, "simulated": []}
    with ResultStore(tmp_path / "r.sqlite") as store:
        old = Recipe(PruneSpec("unstructured", "l1", "global", 0.5))
        new = Recipe(PruneSpec("unstructured", "l1", "global", 0.9))
        store.put("lenet5-mnist", old.to_json(), "quick", 1, base)  # a row written before forgets existed
        with_f = _result(0.9, [0])
        store.put("lenet5-mnist", new.to_json(), "quick", 1, {**base, "forgets": with_f["forgets"]})
        df = store.frame("lenet5-mnist")
        assert store.get("lenet5-mnist", new.to_json(), "quick", 1)["forgets"] == with_f["forgets"]
    assert pd.isna(df["forgets"].iloc[0])  # missing, as every column of a row measured before it existed
    assert json.loads(df["forgets"].iloc[1]) == with_f["forgets"]
