"""Sensitivity, Sweep, Compare, Export and About on the bundled LeNet-5."""

from __future__ import annotations

import pandas as pd

from compress_core.base.recipe import Recipe

from .conftest import metric_values, new_app, texts, url_recipe


def _open(at, page: str):
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _submit(at, label: str):
    [button] = [b for b in at.get("form_submit_button") if b.proto.label == label] or [
        b for b in at.button if b.label == label
    ]
    button.click().run()
    return at


def test_sensitivity_analysis_shows_heatmap_table_and_sends_ratios_to_explore(app):
    _open(app, "pages/sensitivity.py")
    assert app.radio(key="sens_kind").value == "sparsity"
    app.multiselect(key="sens_sparsities").set_value([0.5, 0.9])
    _submit(app, "Analyse")
    assert not app.error, texts(app.error)
    table = app.dataframe[0].value
    assert set(table.columns) >= {"layer", "sparsity", "accuracy", "accuracy_drop"}
    assert sorted(table["sparsity"].unique()) == [0.5, 0.9]
    assert len(app.get("plotly_chart")) == 1
    ratios = app.dataframe[1].value
    assert list(ratios.columns) == ["layer", "sparsity"] and len(ratios) == table["layer"].nunique()
    [use] = [b for b in app.button if b.label == "Use as per-layer ratios in Explore"]
    use.click().run()
    assert not app.exception and app.title[0].value == "Explore"
    sent = dict(map(tuple, url_recipe(app)["prune"]["layer_sparsity"]))
    assert sent == dict(zip(ratios["layer"], ratios["sparsity"], strict=True))
    assert "Per-layer ratios are set" in texts(app.info)


def test_bit_sensitivity_runs_from_the_same_form(app):
    _open(app, "pages/sensitivity.py")
    app.radio(key="sens_kind").set_value("bits")
    app.multiselect(key="sens_bits").set_value([8, 2])
    _submit(app, "Analyse")
    assert not app.error, texts(app.error)
    assert sorted(app.dataframe[0].value["bits"].unique()) == [2, 8]


def test_sweep_runs_persists_and_loads_a_point_into_explore(app):
    _open(app, "pages/sweep.py")
    assert "No stored results" in texts(app.info)
    app.multiselect(key="sweep_sparsities").set_value([0.0, 0.5])
    app.multiselect(key="sweep_bits").set_value([32, 4])
    _submit(app, "Run sweep")
    assert not app.error, texts(app.error)
    assert "4 recipe(s)" in texts(app.success)
    assert len(app.dataframe[0].value) == 4

    reloaded = _open(new_app().run(), "pages/sweep.py")  # a new session reads the results from disk
    table = reloaded.dataframe[0].value
    assert len(table) == 4 and table["pareto_size"].any()
    target = "unstructured l1 global 50% + 4-bit symm per-channel + reconstructed"  # LeNet-5's default recovery
    index = [i for i in reloaded.selectbox(key="sweep_pick").options if i.startswith(target)]
    assert index, reloaded.selectbox(key="sweep_pick").options
    reloaded.selectbox(key="sweep_pick").select(next(i for i, lbl in enumerate(table["label"]) if lbl == target)).run()
    [open_button] = [b for b in reloaded.button if b.label == "Open in Explore"]
    open_button.click().run()
    assert reloaded.title[0].value == "Explore"
    assert reloaded.slider(key="w_sparsity_pct").value == 50 and reloaded.select_slider(key="w_bits").value == 4
    assert Recipe.from_dict(url_recipe(reloaded)).label() == target


def test_compare_shows_pinned_recipes_side_by_side_and_unpins(app):
    for sparsity in (0, 50, 90):
        app.slider(key="w_sparsity_pct").set_value(sparsity).run()
        app.button(key="b_pin").click().run()
    _open(app, "pages/compare.py")
    table = app.dataframe[0].value.set_index("measure")
    assert list(table.columns) == [
        "#1 LeNet-5 (MNIST) · dense fp32",
        "#2 LeNet-5 (MNIST) · unstructured l1 global 50% + reconstructed",
        "#3 LeNet-5 (MNIST) · unstructured l1 global 90% + reconstructed",
    ]
    params = [int(v.split()[0].replace(",", "")) for v in table.loc["non-zero parameters"]]
    assert params == sorted(params, reverse=True) and params[0] == 61_706
    assert table.loc["file size"].iloc[0].endswith("(same as dense)")
    assert len(app.get("plotly_chart")) == 1
    app.button(key="b_unpin_0").click().run()
    assert list(app.dataframe[0].value.columns)[1:] == [
        "#1 LeNet-5 (MNIST) · unstructured l1 global 50% + reconstructed",
        "#2 LeNet-5 (MNIST) · unstructured l1 global 90% + reconstructed",
    ]
    app.button(key="b_clear_pins").click().run()
    assert not app.dataframe and "Nothing pinned yet" in texts(app.info)


def test_export_offers_artefact_recipe_onnx_and_csv(app):
    app.slider(key="w_sparsity_pct").set_value(50).run()
    _open(app, "pages/export.py")
    labels = [b.proto.label for b in app.get("download_button")]
    assert any(label.startswith("Download .psz") for label in labels)
    assert "Download recipe.json" in labels and "Download results.csv" in labels
    assert '"sparsity": 0.5' in texts(app.code)
    [build] = [b for b in app.button if b.label == "Build ONNX file"]
    build.click().run()
    assert not app.error, texts(app.error)
    assert any(b.proto.label.startswith("Download .onnx") for b in app.get("download_button"))


def test_about_lists_the_model_zoo(app):
    _open(app, "pages/about.py")
    zoo = app.dataframe[0].value
    assert isinstance(zoo, pd.DataFrame) and "lenet5-mnist" in zoo["model"].tolist()
    assert "Unstructured pruning" in texts(app.markdown)


def test_full_evaluation_uses_the_whole_test_set(app):
    app.sidebar.radio(key="eval_mode").set_value("full").run()
    assert not app.error and len(metric_values(app)) == 4
    assert app.query_params["eval"] == "full"
    notes = [c.value for c in app.caption if "Simulated or estimated" in c.value or "nothing is simulated" in c.value]
    assert notes and "subset" not in notes[0]


def test_a_failing_onnx_export_shows_the_reason(app, monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise RuntimeError("exporter refused this graph")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    _open(app, "pages/export.py")
    [build] = [b for b in app.button if b.label == "Build ONNX file"]
    build.click().run()
    assert not app.exception
    assert "ONNX export failed: RuntimeError: exporter refused this graph" in texts(app.error)
    assert any(b.proto.label.startswith("Download .psz") for b in app.get("download_button"))  # the rest still works
