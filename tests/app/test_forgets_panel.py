"""Explore's "What changed" panel: lazy behind its expander, zero flips for the dense recipe, real flips and the
gallery for a heavy one; ResNet-20 too; Compare's flips row per pin."""

from __future__ import annotations

import json

import pytest

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from pages.ui import forgets_panel

from .conftest import metric_values, new_app, texts, url_recipe

HEAVY = Recipe(PruneSpec("unstructured", "l1", "global", 0.9), QuantSpec(bits=2))


def open_panel(at):
    at.session_state[forgets_panel.W_OPEN] = True
    at.run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    return at


def flips(at) -> tuple[int, int]:
    values = metric_values(at)
    return int(values["Right → wrong"].replace(",", "")), int(values["Wrong → right"].replace(",", ""))


def test_the_panel_is_closed_and_computes_nothing_until_opened(app):
    assert "What changed" in " ".join(e.label for e in app.expander)
    assert "Right → wrong" not in metric_values(app)


def test_the_dense_recipe_flips_nothing(app):
    open_panel(app)
    assert flips(app) == (0, 0)
    assert metric_values(app)["Agreement with dense"] == "100.0%"
    assert "No image changed its top-1 class" in texts(app.caption)
    assert "No class loses beyond noise" in texts(app.caption)


def test_a_heavy_recipe_flips_images_and_names_the_classes_it_hurts():
    at = open_panel(new_app(recipe=HEAVY.with_recovery("none").to_json()).run())
    right_to_wrong, _ = flips(at)
    assert right_to_wrong > 0
    captions = texts(at.caption)
    assert "images per class" in captions and "shown (right → wrong)" in captions
    assert len(at.get("image")) == forgets_panel.GALLERY  # the gallery shows the flipped test images themselves
    assert any(c.proto.spec for c in at.get("plotly_chart"))


def test_per_class_on_the_full_test_set_says_how_many_images_it_uses():
    at = open_panel(new_app(recipe=HEAVY.with_recovery("none").to_json()).run())
    assert "~100 per class" in texts(at.caption) and "Switch to the full 10,000" in texts(at.caption)
    at.toggle(key=forgets_panel.W_FULL).set_value(True).run()
    assert not at.exception and not at.error, texts(at.error)
    assert "On 10,000 test images" in texts(at.markdown) and "the full test set" in texts(at.markdown)
    assert flips(at)[0] > 0


@pytest.mark.data
def test_resnet20_at_80_percent_renders_with_its_cifar_classes():
    recipe = Recipe(PruneSpec("unstructured", "l1", "global", 0.8)).with_recovery("none")
    at = open_panel(new_app(model="resnet20-cifar10", recipe=recipe.to_json()).run())
    assert "On 1,000 test images" in texts(at.markdown)
    right_to_wrong, wrong_to_right = flips(at)
    assert right_to_wrong + wrong_to_right > 0
    assert any(name in texts(at.caption) for name in ("cat", "dog", "bird", "truck", "airplane"))


def test_compare_shows_each_pins_flips_side_by_side(app):
    app.button(key="b_pin").click().run()  # the dense recipe
    app.slider(key="w_sparsity_pct").set_value(90).run()
    app.select_slider(key="w_bits").set_value(2).run()
    app.button(key="b_pin").click().run()
    app.switch_page("pages/compare.py").run()
    assert not app.exception and not app.error, texts(app.error)
    assert "What each pin forgets" in texts(app.markdown)
    table = next(df.value for df in app.dataframe if "right → wrong" in list(df.value["measure"]))
    dense_col, heavy_col = [c for c in table.columns if c.startswith("#")]
    rows = table.set_index("measure")
    assert rows.loc["right → wrong", dense_col].startswith("0 ")
    assert not rows.loc["right → wrong", heavy_col].startswith("0 ")
    assert rows.loc["agreement with dense", dense_col] == "100.0%"


def test_a_results_own_forgets_is_read_instead_of_computed():
    import torch

    from compress_core.bench.forgets import forgets
    from pages.ui import cache, forgets_cache

    name = cache.workbench("lenet5-mnist").eval_data("quick").name
    own = forgets(torch.eye(3), torch.eye(3)[[1, 1, 2]], torch.tensor([0, 1, 2])).to_dict()
    got = forgets_cache.known("lenet5-mnist", HEAVY, "quick", {"forgets": own, "eval_set": name})
    assert got is not None and got["flips_right_to_wrong"] == 1 and got["eval_set"] == name
    other_set = forgets_cache.known("lenet5-mnist", HEAVY, "quick", {"forgets": own, "eval_set": "another-set"})
    assert other_set is None or other_set["n"] != 3  # measured on another set: never shown for this one


def test_a_failure_inside_the_panel_is_a_message_not_a_traceback(monkeypatch):
    from pages.ui import forgets_cache

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(forgets_cache, "known", broken)  # every result carries its forgets: the first call
    monkeypatch.setattr(forgets_cache, "forgets_of", broken)
    recipe = Recipe(PruneSpec("unstructured", "l1", "global", 0.35)).with_recovery("none")
    at = new_app(recipe=recipe.to_json()).run()
    at.session_state[forgets_panel.W_OPEN] = True
    at.run()
    assert not at.exception
    assert "Something went wrong (RuntimeError: boom)" in texts(at.error)
    assert metric_values(at)["Top-1 accuracy"]  # the rest of the page is still there


def test_the_reports_of_explore_and_compare_carry_the_flip_table(app):
    from pages.ui import report_panel

    app.button(key="b_pin").click().run()  # the dense recipe
    app.slider(key="w_sparsity_pct").set_value(90).run()
    app.select_slider(key="w_bits").set_value(2).run()
    app.button(key="b_pin").click().run()
    assert not app.exception and not app.error, texts(app.error)
    recipe = Recipe.from_dict(url_recipe(app))
    for doc in (
        report_panel.explore_html("lenet5-mnist", recipe, "quick"),
        report_panel.compare_html(app.session_state["pins"], "quick"),
    ):
        assert "What the compressed models forget" in doc and recipe.label() in doc


def test_across_recipes_charts_class_damage_against_sparsity_and_counts_the_exemplars():
    from pages.ui import cache

    recipe = HEAVY.with_recovery("none")
    wb = cache.workbench("lenet5-mnist")
    for r in cache.curve_recipes(recipe):  # what Explore's background curve fill measures, as it measures it
        wb.evaluate(r, cache.settings("quick"))
    at = open_panel(new_app(recipe=recipe.to_json()).run())
    assert "Across the recipes measured for this model" in texts(at.markdown)
    names = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(n.startswith("Per-class accuracy change against sparsity") for n in names), (names, texts(at.caption))
    n = len(cache.curve_recipes(recipe))
    assert f"more than half of these {n} recipes" in texts(at.caption) and "approximate" in texts(at.caption)
