"""Explore on a deployment runtime: the selector, the provisional eager number until the runtime's
measurement lands, the deployable file in 'Where the bytes go', channel alignment and the runtime charts."""

from __future__ import annotations

import json
import time

import onnx
import pytest

from compress_core.base.recipe import PruneSpec, Recipe
from pages.ui import runtime_panel

from .conftest import new_app, texts, url_recipe

STRUCT = Recipe(prune=PruneSpec(kind="structured", scope="layer", sparsity=0.5, residual=False))


def _latency_title(at) -> str:
    return next(m.label for m in at.metric if m.label.startswith("Latency p50"))


def _until(at, done, timeout_s: float = 240.0):
    """Rerun (cached results make it cheap) until ``done(at)``: the runtime job runs in a worker process."""
    deadline = time.monotonic() + timeout_s
    while not done(at):
        assert time.monotonic() < deadline, f"still {_latency_title(at)!r} after {timeout_s:.0f} s"
        time.sleep(1.0)
        at.run()
        assert not at.exception and not at.error, texts(at.error)
    return at


def test_eager_is_the_pinned_default_and_says_so(app):
    assert app.selectbox(key="w_runtime").value == "torch"
    assert _latency_title(app) == "Latency p50 · PyTorch eager"


def test_switching_to_onnx_runtime_is_provisional_then_measured_with_its_file():
    at = new_app(recipe=STRUCT.to_json()).run()
    at.selectbox(key="w_runtime").set_value("onnxruntime").run()
    assert not at.exception and not at.error, texts(at.error)
    first = _latency_title(at)
    assert first in ("Latency p50 · provisional", "Latency p50 · ONNX RT")
    _until(at, lambda a: _latency_title(a) == "Latency p50 · ONNX RT")
    note = texts(at.caption)
    assert "vs eager PyTorch dense" in note and "accuracy on ONNX Runtime" in note
    sizes = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "bytes go" in c.proto.spec)
    assert any("Deployable file (ONNX Runtime)" in json.dumps(t.get("y", t.get("x"))) for t in sizes["data"])


def test_channel_alignment_is_part_of_the_structured_recipe():
    at = new_app(recipe=STRUCT.to_json()).run()
    at.select_slider(key="w_round_to").set_value(8).run()
    assert not at.exception and not at.error, texts(at.error)
    assert url_recipe(at)["prune"]["round_to"] == 8 and "round_to=8" in texts(at.caption)
    at.radio(key="w_kind").set_value("unstructured").run()  # alignment means nothing without channels
    assert not at.error, texts(at.error)
    assert "round_to" not in url_recipe(at)["prune"] and at.select_slider(key="w_round_to").disabled


def test_the_staircase_measures_and_offers_stops_that_speed_up():
    at = new_app(recipe=STRUCT.to_json()).run()
    at.button(key="b_staircase").click().run(timeout=600)
    assert not at.exception and not at.error, texts(at.error)
    assert any("Latency staircase on PyTorch eager" in c.proto.spec for c in at.get("plotly_chart"))
    df = at.session_state["staircase"]["df"]
    assert list(df["fraction_kept"]) == sorted(df["fraction_kept"], reverse=True) and df["latency_ms_p50"].notna().all()
    for label, (pct, *_) in zip(
        [b.label for b in at.button if b.label.startswith("Snap to")], runtime_panel.speed_stops(df), strict=True
    ):
        assert label.startswith(f"Snap to {pct} %")


def test_speed_stops_are_the_steps_down():
    import pandas as pd

    df = pd.DataFrame(
        {
            "fraction_kept": [1.0, 0.875, 0.75, 0.5],
            "sparsity": [0.0, 0.125, 0.25, 0.5],
            "latency_ms_p50": [1.0, 0.99, 0.80, 0.79],
            "speedup": [1.0, 1.01, 1.25, 1.27],
        }
    )
    assert runtime_panel.speed_stops(df) == [(25, 1.25, False)]  # 0.875 is within 5 %, 0.5 is no step after 0.75


@pytest.mark.slow
def test_the_fastest_runtime_default_is_measured_and_stated(monkeypatch):
    monkeypatch.setenv("PRUNESCOPE_DEFAULT_RUNTIME", "auto")
    at = new_app(recipe=STRUCT.to_json()).run()
    assert at.selectbox(key="w_runtime").value == "auto"
    _until(at, lambda a: not _latency_title(a).endswith("provisional"), timeout_s=400)
    assert "fastest here:" in texts(at.caption) and "as fast as eager PyTorch" in texts(at.caption)


def test_export_builds_the_deployable_file_of_a_runtime():
    at = new_app(recipe=STRUCT.to_json()).run()
    at.switch_page("pages/export.py").run()
    at.selectbox(key="w_export_runtime").set_value("onnxruntime").run()
    next(b for b in at.button if b.label == "Build the ONNX Runtime file").click().run(timeout=300)
    assert not at.exception and not at.error, texts(at.error)
    files = at.session_state["export_deploy"]["files"]
    ((name, data),) = files.items()
    model = onnx.load_from_string(data)  # the file the download button serves is a loadable ONNX model
    assert name.endswith(".onnx") and model.graph.input and name in texts(at.caption)
    assert any(b.label.startswith(f"Download {name}") for b in at.get("download_button"))
