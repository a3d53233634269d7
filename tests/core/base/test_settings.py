"""MeasureSettings is the Workbench's cache key: equal settings share a Result, the timing budget does not
split it, unresolved threads mean this process's, and the measurement calls take settings and nothing else."""

from __future__ import annotations

import pytest
import torch

from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.settings import MeasureSettings

HALF = Recipe(PruneSpec("unstructured", "l1", "global", 0.5))


def test_the_key_is_recipe_mode_batch_threads_and_latency_not_the_budget():
    here = torch.get_num_threads()
    key = MeasureSettings("full", 8, None, 0.3, False).key(HALF)
    assert key == (HALF.to_json(), "full", 8, here, False)
    assert MeasureSettings("full", 8, here, 2.0, False).key(HALF) == key
    assert MeasureSettings("full", 8, here + 1, 0.3, False).key(HALF) != key
    assert MeasureSettings().resolved().threads == here and MeasureSettings(threads=3).resolved().threads == 3
    assert len({MeasureSettings(), MeasureSettings(), MeasureSettings(batch=2)}) == 2  # frozen, hashable


def test_the_measurement_calls_take_settings_and_refuse_the_old_keywords(wb):
    assert wb.peek(HALF, MeasureSettings(latency=False)) is None  # nothing measured yet
    with pytest.raises(TypeError, match="takes MeasureSettings"):
        wb.evaluate(HALF, "quick")  # type: ignore[arg-type]  # the mistake this guards against
    with pytest.raises(TypeError, match="unexpected keyword argument 'runtime'"):
        wb.evaluate(HALF, runtime="openvino")  # type: ignore[call-arg]  # the runtime bench measures runtimes
    with pytest.raises(TypeError, match="unexpected keyword argument 'latency_batch'"):
        wb.peek(HALF, latency_batch=4)  # type: ignore[call-arg]  # settings carry the batch
