"""MeasureSettings is the Workbench's cache key: equal settings share a Result, the timing budget does not
split it, unresolved threads mean this process's, and the old keyword arguments still say the same thing."""

from __future__ import annotations

import pytest
import torch

from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.settings import MeasureSettings, settings_of

HALF = Recipe(PruneSpec("unstructured", "l1", "global", 0.5))


def test_the_key_is_recipe_mode_batch_threads_and_latency_not_the_budget():
    here = torch.get_num_threads()
    key = MeasureSettings("full", 8, None, 0.3, False).key(HALF)
    assert key == (HALF.to_json(), "full", 8, here, False)
    assert MeasureSettings("full", 8, here, 2.0, False).key(HALF) == key
    assert MeasureSettings("full", 8, here + 1, 0.3, False).key(HALF) != key
    assert MeasureSettings().resolved().threads == here and MeasureSettings(threads=3).resolved().threads == 3
    assert len({MeasureSettings(), MeasureSettings(), MeasureSettings(batch=2)}) == 2  # frozen, hashable


def test_old_keyword_arguments_set_the_matching_fields():
    got = settings_of(
        None, {"mode": "full", "latency_batch": 4, "latency_budget_s": 1.0, "measure_latency": False}, "f"
    )
    assert got == MeasureSettings("full", 4, None, 1.0, False)
    assert settings_of(MeasureSettings(batch=2), {"threads": 1}, "f") == MeasureSettings(batch=2, threads=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'runtime'"):
        settings_of(None, {"runtime": "openvino"}, "evaluate")
    with pytest.raises(TypeError, match="takes MeasureSettings"):
        settings_of("quick", {}, "peek")  # type: ignore[arg-type]  # the mistake this guards against
