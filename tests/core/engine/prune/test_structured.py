"""Structured pruning physically removes channels, and the smaller model computes what the dense model
computes with those channels switched off.

The reference trick: before pruning, every channel gets a tag (BatchNorm ``running_mean`` or, in
nets without BatchNorm, the layer bias) that torch-pruning carries along with the channel. After
pruning the surviving tags name the kept channels; a dense copy with the removed channels zeroed
(BatchNorm weight and bias, or filter and bias) must give the same outputs as the pruned model.
"""

from __future__ import annotations

import copy
import io
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

from compress_core import models
from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.records import Calibration
from compress_core.bench.workbench import Workbench
from compress_core.engine.prune.structured import ChannelScatter, apply_skeleton_, structured_prune_
from compress_core.engine.stages import apply_recipe
from compress_core.models.cifar_resnet import BasicBlock, CifarResNet, PadShortcut
from compress_core.models.lenet import LeNet5, LeNet300

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)
TAG = 0.01


def spec(sparsity: float = 0.5, **kw) -> PruneSpec:
    return PruneSpec(kind="structured", sparsity=sparsity, **{"scope": "layer", **kw})


def tagged(model: nn.Module) -> nn.Module:
    """Random BN statistics/affines plus a channel tag in running_mean (or in the bias without BN)."""
    torch.manual_seed(0)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.running_mean.copy_(torch.arange(bn.num_features) * TAG)
        if not bns:
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.bias.copy_(torch.arange(m.bias.numel()) * TAG)
    return model.eval()


def kept(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            out[name] = torch.round(m.running_mean / TAG).long()
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            out[name] = torch.round(m.bias / TAG).long()
    return out


def zeroed_reference(dense: nn.Module, survivors: dict[str, torch.Tensor]) -> nn.Module:
    """Dense copy whose removed channels output exactly zero."""
    ref = copy.deepcopy(dense)
    mods = dict(ref.named_modules())
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in mods.values())
    with torch.no_grad():
        for name, idx in survivors.items():
            m = mods[name]
            if has_bn and not isinstance(m, nn.BatchNorm2d):
                continue
            gone = torch.ones(m.weight.shape[0], dtype=torch.bool)
            gone[idx] = False
            m.weight[gone] = 0
            m.bias[gone] = 0
    return ref


def assert_same_outputs(a: nn.Module, b: nn.Module, shape: tuple[int, ...], atol: float = 1e-4) -> None:
    x = torch.randn(4, *shape)
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.shape == yb.shape
    assert torch.allclose(ya, yb, atol=atol, rtol=1e-4), (ya - yb).abs().max()


def no_hooks(model: nn.Module) -> bool:
    return all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks) for m in model.modules())


# -- CIFAR ResNet: residual streams coupled through option-A shortcuts -----------------------------


def test_channel_scatter_computes_the_option_a_shortcut():
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(ChannelScatter(16, 32)(x), PadShortcut(16, 32)(x))


@pytest.mark.parametrize("skip", [("first", "last"), ()])
@pytest.mark.parametrize("criterion", ["l1", "random"])
def test_resnet20_with_residual_streams_pruned_equals_masked_dense(skip, criterion):
    dense = tagged(CifarResNet(20))
    pruned = copy.deepcopy(dense)
    structured_prune_(pruned, spec(0.5, skip=skip, criterion=criterion, scope="global"), CIFAR)
    keep = kept(pruned)

    ref = copy.deepcopy(dense)  # mask every residual stream and every block's inner channels

    def mask(idx: torch.Tensor, channels: int):
        m = torch.zeros(channels)
        m[idx] = 1
        return lambda _mod, _inp, out: out * m.view(1, -1, 1, 1)

    ref.relu.register_forward_hook(mask(keep["bn1"], 16))
    for name, block in ref.named_modules():
        if isinstance(block, BasicBlock):
            block.register_forward_hook(mask(keep[f"{name}.bn2"], block.bn2.num_features))
            block.relu1.register_forward_hook(mask(keep[f"{name}.bn1"], block.bn1.num_features))
    assert_same_outputs(pruned, ref, CIFAR, atol=1e-5)
    assert not any(isinstance(m, PadShortcut) for m in pruned.modules())
    assert no_hooks(pruned)


def test_resnet20_channel_counts_follow_the_sparsity():
    model = CifarResNet(20).eval()
    report = structured_prune_(model, spec(0.3), CIFAR)
    after = report.channels_after
    # Inner channels of every block lose round(0.3 * n); stage 1's residual stream stays whole
    # because the first conv is skipped and feeds it; stages 2 and 3 lose round(0.3 * n) too.
    for stage, n in ((1, 16), (2, 32), (3, 64)):
        for block in range(3):
            assert after[f"layer{stage}.{block}.conv1"] == n - round(0.3 * n)
        conv2 = model.get_submodule(f"layer{stage}.0.conv2")
        assert conv2.out_channels == (16 if stage == 1 else n - round(0.3 * n))
    assert model.conv1.out_channels == 16 and model.linear.out_features == 10
    assert model.linear.in_features == 64 - round(0.3 * 64)
    assert report.params_after < report.params_before and report.macs_after < report.macs_before
    assert report.ignored == ["conv1", "linear"]


def test_inner_only_mode_keeps_every_residual_stream():
    dense = tagged(CifarResNet(20))
    pruned = copy.deepcopy(dense)
    structured_prune_(pruned, spec(0.5, skip=()), CIFAR, residual=False)
    for name, m in pruned.named_modules():
        if isinstance(m, BasicBlock):
            assert m.conv2.out_channels == dense.get_submodule(name).conv2.out_channels
            assert m.conv1.out_channels == dense.get_submodule(name).conv1.out_channels // 2
    assert_same_outputs(pruned, zeroed_reference(dense, kept(pruned)), CIFAR)


# -- other architectures -----------------------------------------------------------------------------

ARCHS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None, num_classes=10), (3, 64, 64)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None, num_classes=10), (3, 64, 64)),
    "lenet5": (LeNet5, MNIST),
    "lenet300": (LeNet300, MNIST),
}


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruned_model_equals_dense_with_removed_channels_zeroed(arch, scope):
    build, shape = ARCHS[arch]
    dense = tagged(build())
    pruned = copy.deepcopy(dense)
    report = structured_prune_(pruned, spec(0.5, scope=scope), shape)
    assert_same_outputs(pruned, zeroed_reference(dense, kept(pruned)), shape)
    assert report.params_after < 0.6 * report.params_before
    assert report.macs_after < 0.75 * report.macs_before
    assert pruned(torch.randn(2, *shape)).shape == (2, 10)
    assert no_hooks(pruned)


def test_lenet5_channel_counts():
    model = LeNet5().eval()
    structured_prune_(model, spec(0.5), MNIST)
    assert (model.conv1.out_channels, model.conv2.out_channels) == (6, 8)
    assert (model.fc1.in_features, model.fc1.out_features, model.fc2.out_features) == (8 * 25, 60, 42)
    assert (model.fc3.in_features, model.fc3.out_features) == (42, 10)


def test_global_scope_removes_the_overall_fraction_but_never_a_whole_layer():
    model = LeNet300().eval()
    structured_prune_(model, spec(0.5, scope="global"), MNIST)
    assert model.fc1.out_features + model.fc2.out_features == 200
    tiny = LeNet300().eval()
    structured_prune_(tiny, spec(0.99, scope="global"), MNIST)
    assert tiny.fc1.out_features >= 1 and tiny.fc2.out_features >= 1
    assert tiny(torch.randn(2, *MNIST)).shape == (2, 10)


def test_round_to_keeps_multiples():
    model = CifarResNet(20).eval()
    structured_prune_(model, spec(0.3), CIFAR, round_to=8)
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels > 3)


# -- criteria, overrides, skip -------------------------------------------------------------------------


@pytest.mark.parametrize("criterion", ["l1", "l2", "random", "taylor", "activation", "entropy"])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_every_criterion_prunes(criterion, scope):
    dense = tagged(CifarResNet(20))
    model = copy.deepcopy(dense)
    calib = [torch.randn(16, *CIFAR)]
    labelled = [(torch.randn(16, *CIFAR), torch.randint(0, 10, (16,)))]
    report = structured_prune_(model, spec(0.5, criterion=criterion, scope=scope), CIFAR, Calibration(calib, labelled))
    assert report.macs_after < 0.5 * report.macs_before
    assert all(p.grad is None for p in model.parameters()), "taylor's gradients must not be left behind"
    assert no_hooks(model) and not model.training


def test_criteria_differ_and_random_follows_the_seed():
    def removed(**kw):
        model = tagged(CifarResNet(20))
        structured_prune_(model, spec(0.5, **kw), CIFAR, Calibration([torch.randn(8, *CIFAR)]))
        return kept(model)["layer3.0.bn1"].tolist()

    assert removed(criterion="random", seed=1) == removed(criterion="random", seed=1)
    assert removed(criterion="random", seed=1) != removed(criterion="random", seed=2)
    assert removed(criterion="l1") != removed(criterion="activation")


def test_data_driven_criteria_need_data():
    with pytest.raises(ValueError, match="taylor"):
        structured_prune_(CifarResNet(20), spec(criterion="taylor"), CIFAR)
    with pytest.raises(ValueError, match="activation"):
        structured_prune_(CifarResNet(20), spec(criterion="activation"), CIFAR)


def test_layer_sparsity_override_is_honoured():
    model = LeNet5().eval()
    report = structured_prune_(model, spec(0.5, layer_sparsity=(("fc1", 0.25),)), MNIST)
    assert (model.conv2.out_channels, model.fc1.out_features, model.fc2.out_features) == (8, 90, 42)
    assert report.overrides_unused == []
    resnet = CifarResNet(20).eval()
    structured_prune_(resnet, spec(0.0, layer_sparsity=(("layer3.0.conv1", 0.75),)), CIFAR)
    assert resnet.layer3[0].conv1.out_channels == 16 and resnet.layer3[1].conv1.out_channels == 64


def test_override_of_a_layer_coupled_to_a_skipped_one_is_reported_unused():
    report = structured_prune_(CifarResNet(20).eval(), spec(0.5, layer_sparsity=(("layer1.0.conv2", 0.5),)), CIFAR)
    assert report.overrides_unused == ["layer1.0.conv2"]


def test_skip_keeps_first_conv_and_classifier_outputs():
    dense = LeNet5().eval()
    model = copy.deepcopy(dense)
    structured_prune_(model, spec(0.5, skip=("first", "last", "fc2")), MNIST)
    assert torch.equal(model.conv1.weight, dense.conv1.weight)
    assert model.fc2.out_features == 84 and model.fc3.out_features == 10
    resnet = CifarResNet(20).eval()
    structured_prune_(resnet, spec(0.5, skip=()), CIFAR)  # skip nothing: the logits still stay 10
    assert resnet.linear.out_features == 10 and resnet.conv1.out_channels == 8


def test_bad_requests_raise_clear_errors():
    with pytest.raises(ValueError, match="nothing to prune"):
        structured_prune_(LeNet300().eval(), spec(skip=("fc1", "fc2", "last")), MNIST)
    with pytest.raises(ValueError, match="not prunable"):
        structured_prune_(LeNet5().eval(), spec(layer_sparsity=(("conv1", 0.5),)), MNIST)
    with pytest.raises(ValueError, match="does not have"):
        structured_prune_(LeNet5().eval(), spec(skip=("nope",)), MNIST)


# -- the result is a plain module --------------------------------------------------------------------


def test_skeleton_rebuilds_the_pruned_architecture():
    pruned = tagged(CifarResNet(20))
    report = structured_prune_(pruned, spec(0.5, skip=()), CIFAR)
    fresh = apply_skeleton_(CifarResNet(20).eval(), report.skeleton)
    fresh.load_state_dict(pruned.state_dict())
    assert_same_outputs(fresh, pruned, CIFAR, atol=0)


def test_pruned_model_runs_without_torch_pruning(tmp_path):
    model = CifarResNet(20).eval()
    structured_prune_(model, spec(0.5), CIFAR)
    path = tmp_path / "m.pt"
    torch.save(model, path)
    code = (
        "import sys; sys.modules['torch_pruning'] = None\n"
        "import torch\n"
        f"m = torch.load({str(path)!r}, weights_only=False)\n"
        "print(tuple(m(torch.randn(2, 3, 32, 32)).shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(2, 10)"


def test_apply_recipe_prunes_a_copy_and_leaves_the_input_untouched():
    base = models.load("lenet5-mnist")
    before = copy.deepcopy(base.state_dict())
    comp = apply_recipe(base, Recipe(spec(0.5)), models.get_spec("lenet5-mnist"))
    assert comp.model is comp.float_model and comp.kernels == "fp32"
    assert comp.model.conv2.out_channels == 8 and base.conv2.out_channels == 16
    assert comp.structure.params_after < comp.structure.params_before == 61_706
    for k, v in base.state_dict().items():
        assert torch.equal(v, before[k]), k
    buf = io.BytesIO()
    torch.save(comp.model.state_dict(), buf)  # a plain state_dict, nothing torch-pruning specific


def test_workbench_structured_keeps_the_shared_model():
    wb = Workbench("lenet5-mnist")
    before = copy.deepcopy(wb.model.state_dict())
    comp = wb.compress(Recipe(spec(0.5, criterion="taylor")))
    assert comp.model.fc1.out_features == 60
    for k, v in wb.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_global_scope_never_takes_more_than_the_cap_of_a_layer():
    from compress_core.engine.prune.structured import GLOBAL_MAX_GROUP_FRACTION, group_cap

    assert GLOBAL_MAX_GROUP_FRACTION == 0.8
    assert [group_cap(16, s) for s in (0.3, 0.5, 0.8, 0.9, 0.95)] == [12, 12, 12, 14, 15]
    assert group_cap(1, 0.5) == 0 and group_cap(10, 0.99) == 9  # never a group's last channel
    for sparsity in (0.5, 0.7):
        model = models.load("lenet5-mnist")
        structured_prune_(model, PruneSpec("structured", "l1", "global", sparsity), MNIST)
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) and name != "conv1":
                assert m.out_channels >= 4, f"{name} kept {m.out_channels} of 16 at global {sparsity:.0%}"
