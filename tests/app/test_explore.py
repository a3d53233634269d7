"""Explore: the controls drive the recipe, the four cards follow, and honest labels stay on screen."""

from __future__ import annotations

import json

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe

from .conftest import metric_values, new_app, texts, url_recipe


def test_moving_the_sparsity_slider_changes_the_metrics(app):
    dense = metric_values(app)
    app.slider(key="w_sparsity_pct").set_value(80).run()
    pruned = metric_values(app)
    assert not app.exception and not app.error
    assert pruned["Non-zero parameters"] != dense["Non-zero parameters"]
    assert pruned["File size"] != dense["File size"]
    nonzero = int(pruned["Non-zero parameters"].replace(",", ""))
    assert 10_000 < nonzero < 20_000  # 80 % of the prunable weights gone, first/last layers kept dense
    assert "unstructured l1 global 80%" in texts(app.caption)


def test_bit_width_changes_the_size_and_is_labelled_simulated(app):
    app.select_slider(key="w_bits").set_value(4).run()
    assert not app.error
    assert "4-bit" in texts(app.caption) and "simulated" in texts(app.caption)
    size_kb = float(metric_values(app)["File size"].split()[0])
    assert size_kb < 100  # 4-bit codes: well under the 250 kB fp32 file


def test_real_int8_toggle_is_only_enabled_with_8_bits(app):
    assert app.toggle(key="w_int8").disabled
    app.select_slider(key="w_bits").set_value(8).run()
    assert not app.toggle(key="w_int8").disabled
    app.toggle(key="w_int8").set_value(True).run()
    assert not app.error, texts(app.error)
    assert url_recipe(app)["quant"]["int8"] is True
    assert "int8" in texts(app.caption)
    app.select_slider(key="w_bits").set_value(4).run()  # leaving 8 bits switches the kernels off
    assert app.toggle(key="w_int8").value is False
    assert url_recipe(app)["quant"]["int8"] is False


def test_structured_pruning_removes_parameters_for_real(app):
    app.radio(key="w_kind").set_value("structured").run()
    app.slider(key="w_sparsity_pct").set_value(50).run()
    assert not app.error, texts(app.error)
    values = metric_values(app)
    total = next(c for c in texts(app.caption).split("·") if "stored" in c)
    assert "61,706 stored" not in total  # the weights are gone, not masked
    assert values["Non-zero parameters"] != "61,706"


def test_pin_button_adds_the_recipe_to_compare(app):
    app.slider(key="w_sparsity_pct").set_value(30).run()
    app.button(key="b_pin").click().run()
    label = "unstructured l1 global 30% + reconstructed"  # LeNet-5's default recovery: reconstruction
    assert app.session_state["pins"][0]["label"] == label
    app.switch_page("pages/compare.py").run()
    assert not app.exception and not app.error
    assert list(app.dataframe[0].value.columns) == ["measure", f"#1 LeNet-5 (MNIST) · {label}"]


def test_a_recipe_that_cannot_be_built_shows_an_error_not_a_traceback():
    broken = Recipe(prune=PruneSpec(kind="unstructured", sparsity=0.5, layer_sparsity=(("no_such_layer", 0.5),)))
    at = new_app(recipe=broken.to_json()).run()
    assert not at.exception
    assert "no_such_layer" in texts(at.error)
    [reset] = [b for b in at.button if b.label == "Reset to the default recipe"]
    reset.click().run()
    assert not at.error and len(at.metric) == 4
    assert url_recipe(at)["prune"]["layer_sparsity"] == []


def test_recover_accuracy_fine_tunes_and_shows_before_and_after(app):
    app.slider(key="w_sparsity_pct").set_value(95).run()
    before = metric_values(app)["Top-1 accuracy"]
    app.select_slider(key="w_ft_epochs").set_value(0.25).run()
    app.number_input(key="w_ft_samples").set_value(500).run()
    app.button(key="b_recover").click().run()
    assert not app.exception and not app.error, texts(app.error)
    assert url_recipe(app)["finetune"]["epochs"] == 0.25
    assert "before" in texts(app.success) and before.replace(" ", "") in texts(app.success).replace(" ", "")
    app.slider(key="w_sparsity_pct").set_value(90).run()  # a new recipe drops the fine-tuning
    assert url_recipe(app)["finetune"] is None


def test_per_layer_ratios_are_shown_and_can_be_cleared():
    recipe = Recipe(
        prune=PruneSpec(kind="unstructured", scope="layer", skip=(), layer_sparsity=(("conv2", 0.5), ("fc1", 0.9)))
    )
    at = new_app(recipe=recipe.to_json()).run()
    assert not at.error and "Per-layer ratios are set for 2 layer(s)" in texts(at.info)
    at.button(key="b_clear_ratios").click().run()
    assert json.loads(at.query_params["recipe"])["prune"]["layer_sparsity"] == []


def test_residual_stream_toggle_is_part_of_the_structured_recipe(app):
    assert app.toggle(key="w_residual").disabled  # unstructured: not applicable
    app.radio(key="w_kind").set_value("structured").run()
    app.slider(key="w_sparsity_pct").set_value(30).run()
    assert not app.error, texts(app.error)
    assert url_recipe(app)["prune"]["residual"] is False  # the structured default: inner channels only
    assert "structured inner l1 layer 30%" in texts(app.caption)
    app.toggle(key="w_residual").set_value(True).run()
    assert not app.error, texts(app.error)
    assert url_recipe(app)["prune"]["residual"] is True
    assert "structured l1 layer 30%" in texts(app.caption)


def test_per_layer_bits_from_the_budget_solver_survive_explore():
    recipe = Recipe(
        prune=PruneSpec(kind="unstructured", sparsity=0.5), quant=QuantSpec(bits=8, layer_bits=(("conv2", 4),))
    )
    at = new_app(recipe=recipe.to_json()).run()
    assert not at.exception and not at.error, texts(at.error)
    assert url_recipe(at)["quant"]["layer_bits"] == [["conv2", 4]]
    assert "4-bit on 1 layer(s)" in texts(at.caption)
    at.select_slider(key="w_bits").set_value(6).run()  # the slider sets the other layers' bits
    assert url_recipe(at)["quant"]["bits"] == 6 and url_recipe(at)["quant"]["layer_bits"] == [["conv2", 4]]
