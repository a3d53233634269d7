"""The recovery levels a model can use, and Explore's default among them."""

from __future__ import annotations

from torch import nn

from compress_core.engine.recover import default_level, usable_levels
from compress_core.models.cifar_resnet import CifarResNet
from compress_core.models.lenet import LeNet5


def test_a_model_without_batchnorm_cannot_use_bn_and_defaults_to_reconstruction():
    assert usable_levels(LeNet5()) == ("none", "reconstruct")
    assert default_level(LeNet5()) == "reconstruct"


def test_a_resnet_defaults_to_batchnorm_re_estimation():
    resnet = CifarResNet(8)
    assert usable_levels(resnet) == ("none", "bn", "reconstruct")
    assert default_level(resnet) == "bn"


def test_a_model_with_nothing_to_recover_offers_none():
    assert usable_levels(nn.Sequential(nn.ReLU())) == ("none",) and default_level(nn.Sequential(nn.ReLU())) == "none"
