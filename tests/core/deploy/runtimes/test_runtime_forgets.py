"""A result measured on another runtime says what that runtime's session forgets, not what eager PyTorch did."""

from __future__ import annotations

import pytest

from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.deploy import RuntimeBench
from compress_core.deploy.runtimes import get_runtime


def test_a_runtime_result_carries_its_own_forgets(wb):
    reason = get_runtime("onnxruntime").available()
    if reason is not None:
        pytest.skip(reason)
    s = MeasureSettings(threads=1, latency=False)
    recipe = Recipe(PruneSpec("unstructured", "l1", "global", 0.9))
    r = RuntimeBench.of(wb).on_runtime(recipe, "onnxruntime", s)
    f = r.forgets or {}
    assert f["agreement"] == pytest.approx(r.agreement) and f["accuracy"] == pytest.approx(r.accuracy)
    assert f["flips_right_to_wrong"] - f["flips_wrong_to_right"] == round((r.dense_accuracy - r.accuracy) * f["n"])
