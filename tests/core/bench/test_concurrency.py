"""One Workbench shared by eight threads (the dashboard shares one per model between sessions):
every recipe gets the result it gets alone, and the shared model is never changed.

Real int8 kernels are left out of the eight: FX tracing (``prepare_fx``, used by ``int8.quantize_static``)
patches ``nn.Module.__call__`` for the whole process while it traces, so a forward pass in another thread
at that moment fails with "module is not installed as a submodule" (seen in 1 of 6 runs with int8 in the
mix). The last test reproduces it deterministically."""

from __future__ import annotations

import contextlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench

RECIPES = [
    Recipe(PruneSpec("unstructured", "l1", "global", 0.5)),
    Recipe(PruneSpec("unstructured", "l2", "layer", 0.7)),
    Recipe(PruneSpec("unstructured", "random", "global", 0.6, seed=3)),
    Recipe(PruneSpec("unstructured", "taylor", "global", 0.8)),
    Recipe(PruneSpec("unstructured", "activation", "layer", 0.5)),
    Recipe(quant=QuantSpec(8, int8=True)),  # FX tracing runs while other threads evaluate
    Recipe(PruneSpec("unstructured", "l1", "global", 0.9), QuantSpec(2, "asymmetric", "per_tensor")),
    Recipe(PruneSpec("structured", "l1", "global", 0.3)),
]
FIELDS = (
    "accuracy",
    "agreement",
    "params_nonzero",
    "params_total",
    "size_bytes",
    "macs",
    "dense_macs",
    "dense_accuracy",
    "eval_samples",
)


def _snapshot(model: torch.nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def _facts(result) -> dict:
    return {f: getattr(result, f) for f in FIELDS}


def test_eight_threads_on_one_workbench_get_the_sequential_results():
    alone = Workbench("lenet5-mnist")
    expected = [_facts(alone.evaluate(r, MeasureSettings(latency=False))) for r in RECIPES]

    shared = Workbench("lenet5-mnist")
    before_bytes = _snapshot(shared.model)
    before = {k: v.clone() for k, v in shared.model.state_dict().items()}
    with ThreadPoolExecutor(max_workers=len(RECIPES)) as pool:
        futures = [pool.submit(shared.evaluate, r, MeasureSettings(latency=False)) for r in RECIPES]
        got = [_facts(f.result(timeout=600)) for f in futures]

    for recipe, want, have in zip(RECIPES, expected, got):
        assert have == want, recipe.label()
    assert len({g["params_nonzero"] for g in got}) >= 6, "the recipes must really differ"
    for k, v in shared.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert _snapshot(shared.model) == before_bytes
    assert not shared.model.training and not shared.model._forward_hooks
    assert all(not m._forward_hooks for m in shared.model.modules()), "no measurement hook left on the shared model"


INSIDE, GO = threading.Event(), threading.Event()  # module-level: quantize_static deep-copies the model


class _PausesWhileTraced(nn.Module):
    """Holds FX tracing open: its forward (run once, symbolically, by prepare_fx) waits for ``GO``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        INSIDE.set()
        GO.wait(10)
        return self.conv(x)


def test_int8_conversion_does_not_break_a_concurrent_evaluation():
    int8 = pytest.importorskip("compress_core.engine.int8")
    wb = Workbench("lenet5-mnist")
    wb.dense_predictions(wb.eval_data())  # load data first: only the forward pass overlaps the trace
    example = torch.zeros(1, 1, 8, 8)
    INSIDE.clear()
    GO.clear()
    with ThreadPoolExecutor(max_workers=2) as pool:
        converting = pool.submit(int8.quantize_static, _PausesWhileTraced().eval(), example, [example])
        try:
            assert INSIDE.wait(60), "tracing never started"
            evaluating = pool.submit(
                wb.evaluate, Recipe(PruneSpec("unstructured", "l1", "global", 0.5)), MeasureSettings(latency=False)
            )
            with contextlib.suppress(TimeoutError):
                evaluating.result(timeout=2)  # fails at once when broken; a fix may make it wait for the trace
        finally:
            GO.set()
        converting.result(timeout=120)
        assert evaluating.result(timeout=120).params_nonzero < 61_706
