"""The entropy criterion (Luo & Wu 2017): correct entropies on hand-built activation patterns, and the
low-entropy (uninformative) channels and inputs go first, in structured and unstructured pruning."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.records import Calibration
from compress_core.engine.prune import criteria
from compress_core.engine.prune.group_stats import channel_entropy
from compress_core.engine.prune.structured import structured_prune_
from compress_core.engine.stages import apply_recipe


def test_entropy_of_hand_built_columns():
    # column 0 constant, column 1 two values half and half, column 2 four equally likely values
    values = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 1.0], [3.0, 1.0, 2.0], [3.0, 1.0, 3.0]] * 5)
    h = channel_entropy(values, bins=4)
    assert h.tolist() == pytest.approx([0.0, math.log(2), math.log(4)], abs=1e-6)


def test_skewed_distribution_has_lower_entropy_than_a_balanced_one():
    skewed = torch.tensor([[0.0]] * 9 + [[1.0]])
    balanced = torch.tensor([[0.0]] * 5 + [[1.0]] * 5)
    assert channel_entropy(skewed, bins=2).item() < channel_entropy(balanced, bins=2).item()


class Pattern(nn.Module):
    """A 1x1 conv whose 4 output channels respond: constantly, in two levels, in many levels, in many levels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4).eval()
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(4).view(4, 4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _pattern_images(n: int = 64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 4, 2, 2)
    x[:, 0] = 5.0  # constant: no information, entropy 0, however large
    x[:, 1] = (torch.arange(n) % 2).float().view(n, 1, 1)  # two levels
    x[:, 2] = torch.rand(n, 1, 1, generator=g)
    x[:, 3] = torch.rand(n, 1, 1, generator=g) * 0.1  # small but informative
    return [x[:32], x[32:]]


def test_structured_entropy_removes_the_constant_channel_first():
    model = Pattern().eval()
    calib = Calibration(_pattern_images())
    report = structured_prune_(model, PruneSpec("structured", "entropy", "layer", 0.25, skip=()), (4, 2, 2), calib)
    assert report.channels_after == {"conv": 3}
    # the surviving filters are the informative ones: the constant input 0 is no longer read by any filter
    assert model.conv.weight[:, 0].abs().sum() == 0


def test_unstructured_entropy_scores_weights_on_uninformative_inputs_lowest():
    model = Pattern().eval()
    layers = [("conv", model.conv)]
    scores = criteria.weight_scores("entropy", model, layers, Calibration(_pattern_images()))[0]
    diag = torch.diagonal(scores[:, :, 0, 0])
    assert diag[0] == 0 and (diag[1:] > 0).all(), "a weight reading a constant input scores 0"
    comp = apply_recipe(
        Pattern().eval(),
        Recipe(PruneSpec("unstructured", "entropy", "layer", 0.25, skip=("last",))),
        calibration=Calibration(_pattern_images()),
    )
    assert comp.model.conv.weight[0, 0, 0, 0] == 0  # the large weight on the constant input went first


def test_entropy_needs_calibration_images():
    with pytest.raises(ValueError, match="entropy criterion needs training data"):
        apply_recipe(Pattern().eval(), Recipe(PruneSpec("unstructured", "entropy", "layer", 0.5, skip=())))
