"""The Budget page on LeNet-5 with a tiny search space: solve, see the answer beside the uniform best, open
it in Explore, pin it to Compare; an impossible budget is an error sentence, not a traceback."""

from __future__ import annotations

import pytest

from pages.ui import budget_panels

from .conftest import new_app, texts, url_recipe


@pytest.fixture
def budget_app(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path))  # a store of its own: the Sweep test wants an empty one
    monkeypatch.setattr(budget_panels, "SPARSITIES", (0.5, 0.9))
    monkeypatch.setattr(budget_panels, "UNIFORM", (0.9,))
    at = new_app().run()
    at.switch_page("pages/budget.py").run()
    assert not at.exception, at.exception
    assert "Set a budget" in texts(at.info)
    at.multiselect(key=budget_panels.BITS).set_value([4])
    return at


def _solve(at):
    [button] = [b for b in at.get("form_submit_button") if b.proto.label == "Solve"]
    button.click().run()
    assert not at.exception, at.exception
    return at


def test_solve_shows_the_verified_answer_beside_the_uniform_best_and_opens_it(budget_app):
    at = _solve(budget_app)
    assert not at.error, texts(at.error)
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["Answer: top-1 accuracy", "Answer: file size", "Answer: latency p50"]
    assert "vs uniform" in str(at.metric[0].delta)
    assert len(at.get("plotly_chart")) == 1
    predicted = at.dataframe[0].value
    assert list(predicted["quantity"]) == ["top-1 accuracy", "file size (bytes)", "MACs", "latency p50 (ms)"]
    [pin] = [b for b in at.button if b.label == "Pin to Compare"]
    pin.click().run()
    assert any("Pinned" in str(t.value) for t in at.toast)
    [open_button] = [b for b in at.button if b.label == "Open in Explore"]
    open_button.click().run()
    assert not at.exception and at.title[0].value == "Explore"
    assert url_recipe(at)["prune"]["scope"] == "layer"  # the per-layer answer, not a uniform recipe


def test_an_impossible_budget_says_which_limit_and_by_how_much(budget_app):
    at = budget_app
    at.select_slider(key=budget_panels.SIZE_SHARE).set_value(0)
    at.checkbox(key=budget_panels.USE_DROP).check()
    at.number_input(key=budget_panels.DROP).set_value(0.0)
    at.number_input(key=budget_panels.LATENCY).set_value(0.001)
    _solve(at)
    assert at.error and "is infeasible" in texts(at.error) and "over" in texts(at.error)
