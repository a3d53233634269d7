"""Adding a criterion or a recovery level is one class: a throw-away one, registered here, is served by the
engine's own entry points under its key with its vocabulary, and withdrawn again afterwards."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from compress_core.base.records import Calibration
from compress_core.engine import recover
from compress_core.engine.prune import criteria
from compress_core.engine.prune.layers import prunable_layers


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()


@pytest.fixture
def throwaway_criterion():
    @criteria.register
    class Ones(criteria.Criterion):
        key = "ones-test"
        label = "All ones (test)"
        description = "Every weight scores 1: nothing is preferred."
        needs = "images"

        def weight_scores(self, model, layers, calib, seed):
            return [torch.ones_like(m.weight) for _, m in layers]

        def group_scores(self, model, groups, calib, seed):
            return [torch.ones(len(g[0][1])) for g in groups]

    yield Ones
    criteria.CRITERIA.unregister(Ones.key)


def test_a_new_criterion_is_one_class(throwaway_criterion):
    assert "ones-test" in criteria.CRITERIA and list(criteria.CRITERIA)[-1] == "ones-test"
    assert criteria.CRITERIA.labels()["ones-test"] == "All ones (test)"
    assert criteria.needs_data("ones-test")
    model = _model()
    layers = prunable_layers(model, skip=())
    with pytest.raises(ValueError, match="the ones-test criterion needs training data"):
        criteria.weight_scores("ones-test", model, layers, Calibration())
    calib = Calibration(images=[torch.randn(2, 1, 8, 8)])
    scores = criteria.weight_scores("ones-test", model, layers, calib)
    assert [s.shape for s in scores] == [m.weight.shape for _, m in layers]
    assert all(bool((s == 1).all()) for s in scores)


def test_the_throwaway_criterion_is_gone_afterwards():
    assert "ones-test" not in criteria.CRITERIA
    with pytest.raises(ValueError, match="unknown criterion 'ones-test'"):
        criteria.get("ones-test")


@pytest.fixture
def throwaway_level():
    @recover.register
    class Halve(recover.RecoveryLevel):
        key = "halve-test"
        label = "Halve the weights (test)"
        description = "Multiplies every Conv2d/Linear weight by one half."

        def check_model(self, model):
            if not any(isinstance(m, nn.Linear) for m in model.modules()):
                raise ValueError("no Linear layer to halve")

        def apply_(self, model, dense, inputs, report):
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, (nn.Conv2d, nn.Linear)):
                        m.weight.mul_(0.5)
            report.notes.append(f"halved on {report.samples} images")

    yield Halve
    recover.RECOVERY.unregister(Halve.key)


def test_a_new_recovery_level_is_one_class(throwaway_level):
    model, images = _model(), [torch.randn(3, 1, 8, 8), torch.randn(2, 1, 8, 8)]
    dense = copy.deepcopy(model)
    assert recover.RECOVERY.labels()["halve-test"] == "Halve the weights (test)"
    assert recover.usable_levels(model) == ("none", "reconstruct", "halve-test")  # no BatchNorm: no bn
    assert recover.check_level(model, "halve-test") == "halve-test"
    with pytest.raises(ValueError, match="no Linear layer to halve"):
        recover.check_level(nn.Sequential(nn.Conv2d(1, 1, 1)), "halve-test")
    with pytest.raises(ValueError, match="recovery 'halve-test' needs calibration images"):
        recover.recover_(model, dense, "halve-test", [])
    report = recover.recover_(model, dense, "halve-test", images)
    assert (report.level, report.samples, report.notes) == ("halve-test", 5, ["halved on 5 images"])
    assert torch.equal(model[0].weight, dense[0].weight * 0.5)


def test_the_throwaway_level_is_gone_afterwards():
    assert "halve-test" not in recover.RECOVERY
    with pytest.raises(ValueError, match="recovery must be one of none, bn, reconstruct; got 'halve-test'"):
        recover.check_level(_model(), "halve-test")
