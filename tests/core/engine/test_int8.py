"""Real int8 kernels: they agree with fp32 on real data, say what they are, combine with structured
pruning, and rebuild from plain tensors to the very same outputs."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from compress_core import models
from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.records import Calibration, Compressed
from compress_core.data import sets as data
from compress_core.engine import int8
from compress_core.engine.measure import predictions
from compress_core.engine.prune.skeleton import apply_skeleton_
from compress_core.engine.stages import apply_recipe
from compress_core.models.cifar_resnet import CifarResNet
from compress_core.models.lenet import LeNet5, LeNet300

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)


def int8_recipe(mode: str = "auto", prune: PruneSpec | None = None) -> Recipe:
    return Recipe(prune=prune or PruneSpec(), quant=QuantSpec(bits=8, int8=True, int8_mode=mode))


def agreement(a: torch.nn.Module, b: torch.nn.Module, ds: data.TensorSet) -> float:
    return float((predictions(a, ds) == predictions(b, ds)).float().mean())


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist", "heldout"), data.calibration_batches("mnist", 256)


@pytest.fixture(scope="module")
def lenet5_int8(mnist):
    model = models.load("lenet5-mnist")
    return model, apply_recipe(model, int8_recipe(), models.get_spec("lenet5-mnist"), calibration=Calibration(mnist[1]))


def test_lenet5_static_int8_agrees_with_fp32(mnist, lenet5_int8):
    model, comp = lenet5_int8
    assert comp.kernels == f"int8-{int8.backend()}-static"
    assert agreement(comp.model, model, mnist[0]) >= 0.97
    assert any("calibrated on 256 training images" in s for s in comp.simulated)
    assert comp.float_model is not model and not comp.qcodes, "no simulated k-bit step before real int8"


def test_lenet300_auto_is_dynamic_and_agrees(mnist):
    model = models.load("lenet300-mnist")
    comp = apply_recipe(model, int8_recipe(), models.get_spec("lenet300-mnist"))
    assert comp.kernels == "int8-dynamic"
    assert agreement(comp.model, model, mnist[0]) >= 0.97
    assert any("dynamic" in s for s in comp.simulated)


def test_static_int8_needs_calibration_data():
    comp = Compressed(model=LeNet5().eval(), float_model=LeNet5().eval(), recipe=int8_recipe("static"))
    with pytest.raises(ValueError, match="calibration"):
        int8.convert_int8(comp, comp.recipe.quant, Calibration(), MNIST)


def test_dynamic_int8_needs_a_linear_layer():
    conv_only = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)).eval()
    with pytest.raises(ValueError, match="Linear"):
        int8.quantize_dynamic(conv_only)


def test_conversion_does_not_leak_torch_ao_warnings():
    comp = Compressed(model=LeNet5().eval(), float_model=LeNet5().eval(), recipe=int8_recipe("static"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        int8.convert_int8(comp, comp.recipe.quant, Calibration([torch.randn(8, *MNIST)]), MNIST)
    assert not [w for w in caught if "torch.ao" in str(w.message) or "quant_min" in str(w.message)]


def test_structured_then_int8(mnist):
    model = models.load("lenet5-mnist")
    comp = apply_recipe(
        model,
        int8_recipe(prune=PruneSpec("structured", "l1", "layer", 0.3)),
        models.get_spec("lenet5-mnist"),
        calibration=Calibration(mnist[1]),
    )
    assert comp.kernels.endswith("-static") and comp.float_model.conv2.out_channels == 11
    assert comp.structure.params_after < comp.structure.params_before
    assert agreement(comp.model, comp.float_model, mnist[0]) >= 0.95


# -- artefact support: plain tensors in, identical outputs out ---------------------------------------


def roundtrip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    assert all(isinstance(v, torch.Tensor) and not v.is_quantized for v in state.values())
    return st_load(st_save(state))


def test_rebuild_static_resnet20_gives_identical_outputs():
    model = CifarResNet(20).eval()
    comp = Compressed(model=model, float_model=model, recipe=int8_recipe("static"))
    int8.convert_int8(comp, comp.recipe.quant, Calibration([torch.randn(32, *CIFAR) for _ in range(2)]))
    state = roundtrip(int8.int8_state(comp))
    assert "conv1.weight::int_repr" in state and state["conv1.weight::int_repr"].dtype == torch.int8
    rebuilt = int8.rebuild_int8(CifarResNet(20).eval(), "static", CIFAR, state)  # other float weights
    x = torch.randn(8, *CIFAR)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), comp.model(x))


def test_rebuild_dynamic_lenet300_gives_identical_outputs():
    model = models.load("lenet300-mnist")
    comp = Compressed(model=model, float_model=model, recipe=int8_recipe("dynamic"))
    int8.convert_int8(comp, comp.recipe.quant, Calibration())
    rebuilt = int8.rebuild_int8(LeNet300().eval(), "dynamic", MNIST, roundtrip(int8.int8_state(comp)))
    x = torch.randn(8, *MNIST)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), comp.model(x))


def test_rebuild_structured_int8_resnet20_from_skeleton():
    spec = models.get_spec("resnet20-cifar10")
    comp = apply_recipe(
        CifarResNet(20).eval(),
        int8_recipe(prune=PruneSpec("structured", "l1", "layer", 0.5)),
        spec,
        calibration=Calibration([torch.randn(32, *CIFAR)]),
    )
    skeleton = apply_skeleton_(CifarResNet(20).eval(), comp.structure.skeleton)
    rebuilt = int8.rebuild_int8(skeleton, "static", CIFAR, roundtrip(int8.int8_state(comp)))
    x = torch.randn(8, *CIFAR)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), comp.model(x))


def test_rebuild_rejects_a_state_of_another_shape():
    comp = Compressed(model=LeNet300().eval(), float_model=LeNet300().eval(), recipe=int8_recipe("dynamic"))
    int8.convert_int8(comp, comp.recipe.quant, Calibration())
    state = int8.int8_state(comp)
    with pytest.raises(ValueError, match="lacks"):
        int8.rebuild_int8(LeNet5().eval(), "dynamic", MNIST, state)


# -- real CIFAR-10 ----------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_resnet20_static_int8_agrees_on_real_cifar():
    model = models.load("resnet20-cifar10")
    before = copy.deepcopy(model.state_dict())
    comp = apply_recipe(
        model,
        int8_recipe(),
        models.get_spec("resnet20-cifar10"),
        calibration=Calibration(data.calibration_batches("cifar10", 256)),
    )
    subset = data.load("cifar10", "test", quick=500)
    assert comp.kernels.endswith("-static")
    assert agreement(comp.model, model, subset) >= 0.95
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
