"""Explore shows what you would ship: the recovery control, its per-model default, the accuracy card's
one-shot → recovered pair and the curve's two lines; Sensitivity measures after recovery too."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from pages.ui import widgets

from .conftest import new_app, texts, url_recipe


def _curve(at) -> dict:
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if "sparsity" in json.dumps(spec["layout"].get("xaxis", {})):
            return spec
    raise AssertionError("no accuracy-vs-sparsity chart on the page")


def _values(array) -> list[float]:
    """A plotly JSON array: a plain list, or its typed-array form {dtype, bdata}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def test_lenet5_defaults_to_reconstruction_and_offers_no_batchnorm(app):
    control = app.radio(key="w_recovery")
    assert control.options == ["None (one-shot)", "Layer-wise reconstruction"]  # LeNet-5 has no BatchNorm
    assert control.value == "reconstruct"
    assert "recovery" not in url_recipe(app), "the dense recipe has nothing to recover"


def test_the_card_shows_one_shot_and_recovered_and_the_curve_draws_both(app):
    app.slider(key="w_sparsity_pct").set_value(80).run()
    assert not app.exception and not app.error, texts(app.error)
    assert url_recipe(app)["recovery"] == "reconstruct"
    line = next(m.value for m in app.markdown if "one-shot" in m.value)
    oneshot, recovered = (float(part.split("%")[0].split()[-1].strip("*")) for part in line.split("→"))
    card = float(next(m.value for m in app.metric if m.label == "Top-1 accuracy").split()[0])
    assert recovered == pytest.approx(card, abs=0.05) and recovered > oneshot
    names = [t.get("name") for t in _curve(app)["data"]]
    assert "one-shot" in names and "recovered" in names
    one = next(t for t in _curve(app)["data"] if t.get("name") == "one-shot")
    xs = _values(one["x"])  # other sessions of this process may have measured more points of this curve
    assert 0 in xs and _values(one["y"])[xs.index(80)] == pytest.approx(oneshot, abs=0.05)


def test_choosing_no_recovery_gives_the_one_shot_recipe(app):
    app.slider(key="w_sparsity_pct").set_value(80).run()
    app.radio(key="w_recovery").set_value("none").run()
    assert not app.error, texts(app.error)
    assert "recovery" not in url_recipe(app)
    assert not any("one-shot" in m.value for m in app.markdown)
    assert "one-shot" not in [t.get("name") for t in _curve(app)["data"]]


def test_a_recovery_that_lowers_accuracy_says_so():
    res = {"accuracy": 0.90, "accuracy_oneshot": 0.92, "recovery_s": 0.4, "recipe": {"recovery": "reconstruct"}}
    text = widgets.recovery_text(res)
    assert "one-shot 92.0 % → recovered **90.0 %**" in text and "lowered accuracy by 2.0 pp" in text
    assert widgets.recovery_text({**res, "recipe": {}}) == ""


@pytest.mark.data
def test_resnet20_defaults_to_batchnorm_re_estimation():
    at = new_app(model="resnet20-cifar10").run()
    assert not at.exception and not at.error, texts(at.error)
    control = at.radio(key="w_recovery")
    assert control.value == "bn" and "BatchNorm re-estimation" in control.options


def test_sensitivity_measures_after_recovery_and_hands_it_to_explore(app):
    app.switch_page("pages/sensitivity.py").run()
    app.radio(key="sens_recovery").set_value("reconstruct")
    app.multiselect(key="sens_sparsities").set_value([0.5, 0.9])
    app.button[0].click().run()  # Analyse (the form's submit button)
    assert not app.exception and not app.error, texts(app.error)
    assert any(
        "after layer-wise reconstruction" in json.loads(c.proto.spec)["layout"]["title"]["text"]
        for c in app.get("plotly_chart")
    )
    next(b for b in app.button if b.label.startswith("Use as per-layer ratios")).click().run()
    assert not app.exception and not app.error, texts(app.error)
    assert url_recipe(app)["recovery"] == "reconstruct"
