"""Recipe in, Result out, on the real bundled model (and ResNet-20 when the data dir exists)."""

import copy

import pytest
import torch

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench


def test_dense_recipe_reproduces_the_dense_model(wb):
    r = wb.evaluate(Recipe(), MeasureSettings(latency=False))
    assert r.accuracy == r.dense_accuracy and r.agreement == 1.0
    assert r.params_nonzero == r.params_total == r.dense_params == 61_706
    assert r.macs == r.dense_macs and r.eval_samples == 1000


def test_pruning_and_quantization_change_the_measured_numbers(wb):
    base = wb.evaluate(Recipe(), MeasureSettings(latency=False))
    r = wb.evaluate(
        Recipe(PruneSpec("unstructured", "l1", "global", 0.9), QuantSpec(4)), MeasureSettings(latency=False)
    )
    assert r.params_total == base.params_total
    assert r.params_nonzero < 0.15 * r.params_total
    assert r.size_bytes < base.size_bytes / 4
    assert r.compression_ratio == pytest.approx(r.dense_size_bytes / r.size_bytes)
    assert r.accuracy_ci_low <= r.accuracy <= r.accuracy_ci_high
    assert any("simulated" in s for s in r.simulated), "simulated quantization must say so"


def test_heavy_compression_costs_accuracy(wb):
    mild = wb.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.3)), MeasureSettings(latency=False))
    harsh = wb.evaluate(
        Recipe(PruneSpec("unstructured", "l1", "global", 0.95), QuantSpec(1)), MeasureSettings(latency=False)
    )
    assert mild.accuracy > harsh.accuracy + 0.05
    assert mild.agreement > harsh.agreement


def test_the_shared_model_is_never_changed(wb):
    before = copy.deepcopy(wb.model.state_dict())
    for r in [
        Recipe(PruneSpec("unstructured", c, "global", 0.8), QuantSpec(2)) for c in ("l1", "taylor", "activation")
    ]:
        wb.evaluate(r, MeasureSettings(latency=False))
    for k, v in wb.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_results_are_cached_per_recipe(wb):
    r = Recipe(PruneSpec("unstructured", "l1", "global", 0.42))
    assert wb.evaluate(r, MeasureSettings(latency=False)) is wb.evaluate(r, MeasureSettings(latency=False))


def test_unstructured_latency_is_shared_with_dense_and_recorded(wb):
    r = wb.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.5)), MeasureSettings(budget_s=0.05, threads=1))
    assert r.latency_ms_p50 > 0 and r.latency_threads == 1 and r.latency_batch == 1
    assert r.latency_kernels == "fp32"
    assert r.speedup == 1.0, "masked weights run on the same dense kernels: the same measurement is reused"
    assert any("same kernels" in s for s in r.simulated)


def test_global_order_is_reused_across_sparsities(wb):
    wb.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.1)), MeasureSettings(latency=False))
    n = len(wb._scores)
    for s in (0.2, 0.4, 0.6, 0.8):
        wb.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", s)), MeasureSettings(latency=False))
    assert len(wb._scores) == n


@pytest.mark.data
def test_resnet20_quick_eval_end_to_end(resnet20):
    dense = resnet20.evaluate(Recipe(), MeasureSettings(latency=False))
    assert dense.eval_samples == 1000 and 0.88 < dense.accuracy < 0.96
    r = resnet20.evaluate(
        Recipe(PruneSpec("unstructured", "l1", "global", 0.5), QuantSpec(8)), MeasureSettings(latency=False)
    )
    assert r.agreement > 0.9 and r.params_nonzero < 0.55 * r.params_total


def test_a_new_bit_width_on_a_fine_tuned_recipe_reuses_the_fine_tuning(wb):
    from compress_core.base.recipe import FinetuneSpec
    from compress_core.engine.quantize import fake_quantize

    prune = PruneSpec("unstructured", "l1", "global", 0.8)
    ft = FinetuneSpec(epochs=1, max_samples=256, batch_size=64)
    calls = []
    fp32 = wb.compress(Recipe(prune, finetune=ft), progress=lambda f, m: calls.append(m))
    trained = len(calls)
    four = wb.compress(
        Recipe(prune, QuantSpec(4, "symmetric", "per_channel"), finetune=ft), progress=lambda f, m: calls.append(m)
    )
    assert trained > 0 and calls[trained:] == [
        "reused the fine-tuned model of an identical pruning + fine-tuning recipe"
    ]
    assert four.masks.keys() == fp32.masks.keys()
    for name, module in fp32.float_model.named_modules():
        if name in four.qcodes:
            expected = fake_quantize(module.weight, 4, "symmetric", per_channel=True)
            assert torch.equal(dict(four.float_model.named_modules())[name].weight, expected), name
    assert fp32.float_model.fc1.weight[0].unique().numel() > 15, "quantizing the reuse must not touch the fp32 model"


def _fake_paired(cl_ms: float):
    """A stand-in for timing.paired: 10 ms contiguous, ``cl_ms`` channels_last, dense twice as slow."""
    from compress_core.base import timing

    def paired(candidate, baseline, budget_s, checkpoint=None):
        ms = cl_ms if getattr(candidate, "channels_last", False) else 10.0
        return timing.summarise([ms] * 7, [2 * ms] * 7, [2.0] * 7, 1, 0.0, 2)

    return paired


@pytest.mark.parametrize("cl_ms, label", [(5.0, "fp32 channels_last"), (20.0, "fp32")])
def test_large_batch_latency_keeps_the_faster_memory_format_and_says_which(monkeypatch, cl_ms, label):
    from compress_core.bench import workbench as pipeline
    from compress_core.engine import measure

    real = measure.forward_fn

    def tagged(model, input_shape, batch=1, memory_format=torch.contiguous_format):
        fn = real(model, input_shape, batch, memory_format)
        fn.channels_last = memory_format == torch.channels_last
        return fn

    monkeypatch.setattr(measure, "forward_fn", tagged)
    monkeypatch.setattr(pipeline.timing, "paired", _fake_paired(cl_ms))
    wb = Workbench("lenet5-mnist")
    pruned = Recipe(PruneSpec("structured", "l1", "layer", 0.5))
    big = wb.evaluate(pruned, MeasureSettings(batch=64, threads=1))
    assert big.latency_kernels == label and big.latency_ms_p50 == min(cl_ms, 10.0)
    small = wb.evaluate(pruned, MeasureSettings(batch=1, threads=1))
    assert small.latency_kernels == "fp32" and small.latency_ms_p50 == 10.0, "batch 1 is timed contiguous only"


def test_latency_is_paired_with_the_dense_model_in_the_same_window(wb):
    r = wb.evaluate(Recipe(PruneSpec("structured", "l1", "layer", 0.5)), MeasureSettings(budget_s=0.05, threads=1))
    assert r.dense_latency_ms_p50 > 0 and r.latency_ms_p50 > 0
    assert r.speedup_spread is not None and r.speedup_spread >= 0
    assert isinstance(r.latency_noisy, bool) and r.latency_load is not None
    assert (r.latency_note != "") == r.latency_noisy
    assert r.speedup == pytest.approx(r.dense_latency_ms_p50 / r.latency_ms_p50, rel=0.5), (
        "the fastest-call ratio, close to (not equal to) the ratio of the medians"
    )


def test_the_dense_model_is_its_own_baseline_for_size_and_speed(wb):
    r = wb.evaluate(Recipe(), MeasureSettings(budget_s=0.05, threads=1))
    assert r.size_bytes == r.dense_artifact_bytes, "dense means the same file format on every card"
    assert r.speedup == 1.0 and r.dense_latency_ms_p50 == r.latency_ms_p50


def test_remeasure_keeps_the_better_quality_latency(monkeypatch):
    from compress_core.base import timing
    from compress_core.bench import workbench as pipeline

    wb = Workbench("lenet5-mnist")
    recipe = Recipe(PruneSpec("structured", "l1", "layer", 0.5))

    def noisy(*a, **k):
        return timing.summarise([4.0] * 7, [8.0] * 7, [1.0, 1.5, 2, 2, 2, 2.5, 3.0], 1, 9.0, 2)

    def quiet(*a, **k):
        return timing.summarise([5.0] * 7, [9.0] * 7, [1.8] * 7, 1, 0.1, 2)

    monkeypatch.setattr(pipeline.timing, "paired", noisy)
    first = wb.evaluate(recipe, MeasureSettings(threads=1))
    assert first.latency_noisy and "load 9.0" in first.latency_note
    monkeypatch.setattr(pipeline.timing, "paired", quiet)
    second = wb.remeasure(recipe, MeasureSettings(threads=1))
    assert not second.latency_noisy and second.speedup == pytest.approx(1.8)
    assert wb.peek(recipe, MeasureSettings(threads=1)) is second
    monkeypatch.setattr(pipeline.timing, "paired", noisy)
    third = wb.remeasure(recipe, MeasureSettings(threads=1))
    assert third is second, "a noisier re-measurement never replaces a quiet one"


def test_remember_accepts_a_row_stored_before_the_paired_fields_existed(wb):
    old = wb.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.33)), MeasureSettings(latency=False)).to_dict()
    for name in ("speedup_spread", "latency_noisy", "latency_load", "latency_note", "dense_artifact_bytes"):
        old.pop(name)
    fresh = Workbench("lenet5-mnist")
    fresh.remember(old, MeasureSettings(latency=False))
    hit = fresh.peek(Recipe(PruneSpec("unstructured", "l1", "global", 0.33)), MeasureSettings(latency=False))
    assert hit is not None and hit.speedup_spread is None and hit.latency_note == ""


def test_evaluation_reports_progress_in_chunks_and_can_be_abandoned():
    wb = Workbench("lenet5-mnist")
    seen = []
    wb.evaluate(
        Recipe(PruneSpec("unstructured", "l1", "global", 0.61)),
        MeasureSettings(budget_s=0.05),
        progress=lambda f, m: seen.append(m),
    )
    assert sum("images" in m for m in seen) >= 5 and any("timing" in m for m in seen)

    class Moved(Exception):
        pass

    def stop(f, m):
        if "images" in m:
            raise Moved

    recipe = Recipe(PruneSpec("unstructured", "l1", "global", 0.62))
    with pytest.raises(Moved):
        wb.evaluate(recipe, progress=stop)
    assert wb.peek(recipe) is None, "an abandoned measurement leaves nothing half-done in the cache"
