"""Unstructured pruning: exact counts per scope, skip rules, criteria, and the input model untouched."""

import copy

import pytest
import torch
from torch import nn

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.records import Calibration
from compress_core.engine.prune import criteria
from compress_core.engine.prune.layers import prunable_layers
from compress_core.engine.stages import apply_recipe


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.fc1 = nn.Linear(8 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return Tiny().eval()


@pytest.fixture
def batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    return [x[:16], x[16:]], [(x[:16], y[:16]), (x[16:], y[16:])]


def zeros(model, name):
    return int((dict(model.named_modules())[name].weight == 0).sum())


def test_default_skip_is_first_conv_and_classifier(tiny):
    names = [n for n, _ in prunable_layers(tiny, ("first", "last"))]
    assert names == ["conv2", "fc1"]
    assert [n for n, _ in prunable_layers(tiny, ())] == ["conv1", "conv2", "fc1", "fc2"]


def test_unknown_skip_name_is_an_error(tiny):
    with pytest.raises(ValueError, match="skip names a layer 'fc9'"):
        prunable_layers(tiny, ("fc9",))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_layer_scope_removes_exactly_the_fraction_in_each_layer(tiny, sparsity):
    comp = apply_recipe(tiny, Recipe(PruneSpec("unstructured", "l1", "layer", sparsity)))
    for name in ("conv2", "fc1"):
        n = dict(tiny.named_modules())[name].weight.numel()
        assert zeros(comp.model, name) == round(sparsity * n)
    assert zeros(comp.model, "conv1") == 0 and zeros(comp.model, "fc2") == 0


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.9])
def test_global_scope_removes_exactly_the_fraction_overall_with_one_threshold(tiny, sparsity):
    comp = apply_recipe(tiny, Recipe(PruneSpec("unstructured", "l1", "global", sparsity)))
    layers = dict(prunable_layers(comp.model, ("first", "last")))
    total = sum(m.weight.numel() for m in layers.values())
    removed = sum(int((m.weight == 0).sum()) for m in layers.values())
    assert removed == round(sparsity * total)
    kept_min = min(m.weight[m.weight != 0].abs().min() for m in layers.values())
    orig = dict(tiny.named_modules())
    dropped_max = max(orig[n].weight[m.weight == 0].abs().max() for n, m in layers.items() if (m.weight == 0).any())
    assert dropped_max <= kept_min, "global magnitude pruning must drop the globally smallest weights"
    per_layer = [float((m.weight == 0).float().mean()) for m in layers.values()]
    assert max(per_layer) - min(per_layer) > 0.01, "a global threshold gives layers different sparsities"


def test_layer_sparsity_override(tiny):
    spec = PruneSpec("unstructured", "l1", "global", 0.5, layer_sparsity=(("fc1", 0.9),))
    comp = apply_recipe(tiny, Recipe(spec))
    assert zeros(comp.model, "fc1") == round(0.9 * 32 * 128)
    assert zeros(comp.model, "conv2") == round(0.5 * tiny.conv2.weight.numel())


def test_override_of_unknown_layer_is_an_error(tiny):
    with pytest.raises(ValueError, match="not prunable here: nope"):
        apply_recipe(tiny, Recipe(PruneSpec("unstructured", layer_sparsity=(("nope", 0.5),))))


@pytest.mark.parametrize("criterion", sorted(criteria.CRITERIA))
def test_every_criterion_prunes_exactly_and_leaves_the_input_untouched(tiny, batches, criterion):
    before = copy.deepcopy(tiny.state_dict())
    calib, labelled = batches
    comp = apply_recipe(
        tiny, Recipe(PruneSpec("unstructured", criterion, "layer", 0.5)), calibration=Calibration(calib, labelled)
    )
    assert zeros(comp.model, "fc1") == round(0.5 * tiny.fc1.weight.numel())
    for k, v in tiny.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} of the input model changed"
    assert all(p.grad is None for p in tiny.parameters())


def test_criteria_differ_and_random_depends_on_seed(tiny, batches):
    calib, labelled = batches

    def mask(criterion, seed=0):
        comp = apply_recipe(
            tiny,
            Recipe(PruneSpec("unstructured", criterion, "layer", 0.5, seed=seed)),
            calibration=Calibration(calib, labelled),
        )
        return comp.model.fc1.weight != 0

    assert not torch.equal(mask("l1"), mask("taylor"))
    assert not torch.equal(mask("l1"), mask("activation"))
    assert torch.equal(mask("l1"), mask("l2")), "single weights rank the same by |w| and w^2"
    assert torch.equal(mask("random", 1), mask("random", 1))
    assert not torch.equal(mask("random", 1), mask("random", 2))


def test_data_criteria_without_data_fail_clearly(tiny):
    with pytest.raises(ValueError, match="taylor criterion needs training data"):
        apply_recipe(tiny, Recipe(PruneSpec("unstructured", "taylor", "layer", 0.5)))


def test_quantization_keeps_pruned_zeros(tiny):
    comp = apply_recipe(tiny, Recipe(PruneSpec("unstructured", "l1", "layer", 0.7), QuantSpec(3, "asymmetric")))
    assert zeros(comp.model, "fc1") >= round(0.7 * tiny.fc1.weight.numel())
    assert set(comp.qcodes) == {"conv1", "conv2", "fc1", "fc2"}
    assert any(s.startswith("3-bit asymmetric") and "(simulated)" in s for s in comp.simulated)


def test_nothing_prunable_is_a_clear_error():
    model = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="no prunable"):
        apply_recipe(model, Recipe(PruneSpec("unstructured", "l1", "layer", 0.5)))
