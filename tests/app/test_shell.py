"""The shell: navigation, sidebar model picker, session state and the recipe in the URL."""

from __future__ import annotations

import json

import pytest

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.models import REGISTRY

from .conftest import ORIGINAL_PAGES_INIT, metric_values, new_app, texts, url_recipe

PAGES = [
    "pages/explore.py",
    "pages/sensitivity.py",
    "pages/sweep.py",
    "pages/compare.py",
    "pages/export.py",
    "pages/about.py",
]


def test_app_opens_on_explore_with_controls_and_four_metric_cards(app):
    assert app.title[0].value == "Explore"
    assert app.slider(key="w_sparsity_pct").value == 0
    assert app.select_slider(key="w_bits").value == 32
    assert list(metric_values(app)) == [
        "Top-1 accuracy",
        "Non-zero parameters",
        "File size",
        "Latency p50 · PyTorch eager",
    ]
    assert not app.error


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_errors(app, page):
    app.switch_page(page).run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    assert app.title, f"{page} has no title"


def test_sidebar_lists_every_model_with_its_facts(app):
    picker = app.sidebar.selectbox(key="model_id")
    assert picker.options[:2] == ["LeNet-5 (MNIST)", "LeNet-300-100 (MNIST)"]
    assert len(picker.options) == len(REGISTRY)
    assert "61,706 parameters" in texts(app.sidebar.caption)
    assert app.sidebar.radio(key="eval_mode").value == "quick"


def test_url_holds_the_current_recipe_as_json(app):
    app.slider(key="w_sparsity_pct").set_value(40).run()
    recipe = Recipe.from_dict(url_recipe(app))
    assert recipe.prune.sparsity == pytest.approx(0.4)
    assert app.query_params["model"] == "lenet5-mnist"
    assert app.query_params["eval"] == "quick"


def test_a_shared_link_restores_the_exact_recipe():
    shared = Recipe(
        prune=PruneSpec(kind="unstructured", criterion="l2", scope="layer", sparsity=0.65),
        quant=QuantSpec(bits=4, scheme="asymmetric"),
    )
    at = new_app(model="lenet5-mnist", recipe=shared.to_json()).run()
    assert not at.exception and not at.warning
    assert at.slider(key="w_sparsity_pct").value == 65
    assert at.select_slider(key="w_bits").value == 4
    assert at.selectbox(key="w_criterion").value == "l2"
    assert at.radio(key="w_scope").value == "layer"
    assert at.radio(key="w_scheme").value == "asymmetric"
    assert Recipe.from_dict(url_recipe(at)) == shared


@pytest.mark.parametrize(
    "bad", ["{not json", json.dumps({"prune": {"sparsity": 3}}), json.dumps([1, 2]), json.dumps({"quant": {"bits": 5}})]
)
def test_bad_recipe_in_the_url_warns_and_falls_back_to_defaults(bad):
    at = new_app(recipe=bad).run()
    assert not at.exception
    assert "could not be read" in texts(at.warning)
    assert at.slider(key="w_sparsity_pct").value == 0
    assert len(at.metric) == 4
    assert json.loads(at.query_params["recipe"])["prune"]["sparsity"] == 0.0  # the URL is repaired


def test_unknown_model_in_the_url_warns_and_uses_the_default():
    at = new_app(model="no-such-net").run()
    assert not at.exception
    assert "unknown model" in texts(at.warning)
    assert at.sidebar.selectbox(key="model_id").value == "lenet5-mnist"


def test_model_whose_weights_are_missing_shows_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("PRUNESCOPE_OFFLINE", "1")
    at = new_app(model="resnet20-cifar10").run()
    assert not at.exception
    message = texts(at.error) + texts(at.sidebar.warning)
    assert "weights/resnet20-12fca82f.th" in message and "COMPRESS_DATA_DIR" in message
    assert "ResNet-20 · needs data" in at.sidebar.selectbox(key="model_id").options
    assert not at.metric  # no page body, no crash
    at.switch_page("pages/about.py").run()  # About still works and says which weights are missing
    assert not at.exception
    zoo = at.dataframe[0].value.set_index("model")
    assert zoo.loc["resnet20-cifar10", "weights"] == "missing" and zoo.loc["lenet5-mnist", "weights"] == "ready"


def test_a_deep_link_on_a_fresh_server_still_runs_the_router(monkeypatch):
    """Streamlit's legacy pages/ mode runs a deep-linked page file alone on a fresh server; the page
    must bounce through app.py so the sidebar, state and URL handling are there."""
    from streamlit.runtime.pages_manager import PagesManager

    monkeypatch.setattr(PagesManager, "__init__", ORIGINAL_PAGES_INIT)  # AppTest then starts each run fresh
    at = new_app(model="lenet300-mnist").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert at.title[0].value == "Compare"
    assert at.sidebar.selectbox(key="model_id").value == "lenet300-mnist"
