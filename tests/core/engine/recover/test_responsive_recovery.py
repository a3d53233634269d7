"""Recovery that keeps a slider move interactive: the BatchNorm pass reports every batch (so the dashboard
can abandon it for the user's next move) and runs on a channels_last copy with the same statistics; the
one-shot accuracy is the recipe's own no-recovery evaluation, and can be asked for after the recovered one."""

from __future__ import annotations

import copy

import pytest
import torch

from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.engine.recover import bn, recover_
from compress_core.models.cifar_resnet import CifarResNet

LENET = Recipe(PruneSpec("unstructured", "l1", "global", 0.8), recovery="reconstruct")


class Abandon(Exception):
    pass


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return CifarResNet(8).eval()


def _images(n: int = 3, batch: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, 3, 32, 32, generator=g) for _ in range(n)]


def _damaged(model: torch.nn.Module) -> torch.nn.Module:
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            if p.dim() == 4:
                p.mul_((torch.rand_like(p) > 0.5).float())
    return out


def _plain_statistics(model: torch.nn.Module, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """The running statistics of the contiguous pass, computed by hand (BN in training mode, momentum None)."""
    ref = copy.deepcopy(model).eval()
    for _, m in bn.batchnorms(ref):
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for x in images:
            ref(x)
    return [t for _, m in bn.batchnorms(ref) for t in (m.running_mean, m.running_var)]


def test_the_bn_pass_in_lanes_equals_one_pass_over_all_batches():
    """Each lane re-estimates on a copy of its own; merged by batch count they equal one pass over every batch."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # two lanes
    try:
        model = _damaged(_resnet())
        images = [torch.randn(16, 3, 32, 32) * (1 + i) + i for i in range(7)]  # batches that differ
        expected = _plain_statistics(model, images)
        bn.reestimate_(model, images)
    finally:
        torch.set_num_threads(before)
    got = [t for _, m in bn.batchnorms(model) for t in (m.running_mean, m.running_var)]
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for _, m in bn.batchnorms(model):
        assert int(m.num_batches_tracked) == 7
        assert m.momentum == 0.1 and not m.training


def test_the_bn_pass_gives_the_same_bits_on_every_run_and_for_any_lane_count():
    """Which lane takes which batch varies from run to run; the statistics (and so a recovered artefact's bytes
    and its accuracy) must not: every batch is measured on its own and the average is summed in batch order."""
    model = _damaged(_resnet())
    images = [torch.randn(16, 3, 32, 32) * (1 + i) + i for i in range(9)]
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (2, 2, 2, 1):
            torch.set_num_threads(threads)  # two lanes, three times, then one
            m = copy.deepcopy(model)
            bn.reestimate_(m, images)
            runs.append([t.clone() for _, b in bn.batchnorms(m) for t in (b.running_mean, b.running_var)])
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other, strict=True))


def test_the_bn_pass_reports_every_batch_and_matches_the_contiguous_statistics():
    model, images = _damaged(_resnet()), _images()
    expected = _plain_statistics(model, images)
    calls: list[tuple[float, str]] = []
    bn.reestimate_(model, images, progress=lambda f, m: calls.append((f, m)))
    assert [f for f, _ in calls] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])  # before the first, after each
    assert calls[1][1] == "16 of 48 images"
    got = [t for _, m in bn.batchnorms(model) for t in (m.running_mean, m.running_var)]
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(p.is_contiguous() for p in model.parameters()), "the model itself stays in its own memory format"
    assert not any(m.training for m in model.modules())


def test_the_bn_level_reports_progress_and_can_be_abandoned_leaving_dense_untouched():
    dense = _resnet()
    before = {k: v.clone() for k, v in dense.state_dict().items()}
    model, images = _damaged(dense), _images()
    seen: list[str] = []
    recover_(model, dense, "bn", images, progress=lambda f, m: seen.append(m))
    assert any(m.startswith("dense model: ") for m in seen) and "32 of 48 images" in seen

    def stop(f: float, m: str) -> None:
        if not m.startswith("dense model"):
            raise Abandon

    with pytest.raises(Abandon):
        recover_(_damaged(dense), dense, "bn", images, progress=stop)
    for k, v in dense.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not any(m.training for m in dense.modules())


def test_the_one_shot_accuracy_is_the_same_recipe_evaluated_without_recovery():
    wb = Workbench("lenet5-mnist")
    first = wb.evaluate(LENET, MeasureSettings(latency=False), oneshot=False)
    assert first.accuracy_oneshot is None, "asked for later: not measured with the recovered result"
    assert wb.peek(LENET.with_recovery("none"), MeasureSettings(latency=False)) is None
    full = wb.evaluate(LENET, MeasureSettings(latency=False))
    plain = wb.peek(LENET.with_recovery("none"), MeasureSettings(latency=False))
    assert plain is not None and full.accuracy_oneshot == plain.accuracy
    assert full.accuracy == first.accuracy and full.recovery_s == first.recovery_s
    cached = wb.peek(LENET, MeasureSettings(latency=False))
    assert cached is not None and cached.accuracy_oneshot == plain.accuracy
    fresh = Workbench("lenet5-mnist").evaluate(LENET, MeasureSettings(latency=False))
    assert fresh.accuracy_oneshot == plain.accuracy, "deferred or not, the same number"


def test_a_one_shot_already_measured_is_attached_without_asking():
    wb = Workbench("lenet5-mnist")
    plain = wb.evaluate(LENET.with_recovery("none"), MeasureSettings(latency=False))
    res = wb.evaluate(LENET, MeasureSettings(latency=False), oneshot=False)
    assert res.accuracy_oneshot == plain.accuracy


def test_evaluate_reports_the_recovery_before_the_evaluation():
    wb = Workbench("resnet8-test", model=_resnet(), spec=_spec(), eval_override=_eval_set())
    messages: list[str] = []
    wb.evaluate(
        Recipe(PruneSpec("unstructured", "l1", "global", 0.5), recovery="bn"),
        MeasureSettings(latency=False),
        progress=lambda f, m: messages.append(m),
    )
    recovery = [i for i, m in enumerate(messages) if m.startswith("recovery: ")]
    evaluating = [i for i, m in enumerate(messages) if m.startswith("evaluating: ")]
    assert recovery and evaluating and max(recovery) < min(evaluating)
    assert any(m.startswith("one-shot (without recovery): ") for m in messages)


def _spec():
    from compress_core.models import get_spec

    return get_spec("resnet20-cifar10")


def _eval_set():
    from compress_core.data.sets import TensorSet

    g = torch.Generator().manual_seed(3)
    return TensorSet("synthetic-64", torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g))
