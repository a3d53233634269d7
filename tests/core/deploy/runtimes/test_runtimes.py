"""Runtime adapters (compress_core.deploy.runtimes): every available runtime round-trips LeNet-5 and a 50 %
structured ResNet-20 in fp32 and int8 (predictions vs eager PyTorch, the saved file loads back with
equal predictions), refuses a model with an op it lacks in one line, and a missing package skips
with its reason. Deployments are shared between tests (module cache) to keep the file fast."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from compress_core import models
from compress_core.base.recipe import PruneSpec
from compress_core.data import sets as data
from compress_core.deploy.runtimes import RUNTIMES, RuntimeUnsupported, get_runtime
from compress_core.deploy.runtimes import base as runtimes_base
from compress_core.deploy.runtimes.openvino_rt import OpenVINORuntime
from compress_core.deploy.runtimes.torch_rt import TorchRuntime
from compress_core.engine import measure
from compress_core.engine.prune.scatter import ChannelScatter, scatter_pruner
from compress_core.engine.prune.structured import structured_prune_

KEYS = ["torch", "onnxruntime", "openvino", "executorch"]
FP32_AGREEMENT, INT8_AGREEMENT, FP32_MAX_DIFF = 0.99, 0.95, 1e-3
_DEPLOYED: dict[tuple, object] = {}


def _runtime(key: str):
    rt = get_runtime(key)
    reason = rt.available()
    if reason is not None:
        pytest.skip(reason)
    return rt


@pytest.fixture(scope="module")
def lenet():
    model = models.load("lenet5-mnist").eval()
    test = data.load("mnist", "test", quick=300)
    return {
        "name": "lenet",
        "model": model,
        "shape": (1, 28, 28),
        "x": test.x,
        "batch": 1,
        "calib": data.calibration_batches("mnist", 128),
    }


@pytest.fixture(scope="module")
def resnet():
    model = models.load("resnet20-cifar10").eval()
    structured_prune_(model, PruneSpec(kind="structured", scope="layer", sparsity=0.5), (3, 32, 32))
    test = data.load("cifar10", "test", quick=200)
    return {
        "name": "resnet",
        "model": model,
        "shape": (3, 32, 32),
        "x": test.x,
        "batch": 4,
        "calib": data.calibration_batches("cifar10", 128),
    }


def _deployed(key: str, case: dict, int8: bool):
    cache_key = (key, case["name"], int8)
    if cache_key not in _DEPLOYED:
        _DEPLOYED[cache_key] = _runtime(key).deploy(
            case["model"], case["shape"], batch=case["batch"], threads=1, int8=int8, calib=case["calib"]
        )
    return _DEPLOYED[cache_key]


def _check_round_trip(key: str, case: dict, int8: bool, tmp_path) -> None:
    rt = _runtime(key)
    dep = _deployed(key, case, int8)
    with torch.no_grad():
        ref = case["model"](case["x"])
    got = dep.predict(case["x"])
    agreement = float((got.argmax(1) == ref.argmax(1)).float().mean())
    if int8:
        assert dep.int8 and "int8" in dep.kernels
        assert agreement >= INT8_AGREEMENT, f"{dep.kernels}: int8 top-1 agreement {agreement:.3f}"
    else:
        assert not dep.int8 and ("fp32" in dep.kernels)
        assert agreement >= FP32_AGREEMENT, f"{dep.kernels}: fp32 top-1 agreement {agreement:.3f}"
        assert float((got - ref).abs().max()) < FP32_MAX_DIFF
    files = dep.save(tmp_path / "model")
    assert sum(f.stat().st_size for f in files) == dep.file_bytes > 0
    main = next(f for f in files if f.suffix in (rt.suffix, ".pt"))
    loaded = rt.load(main, case["shape"], batch=case["batch"], threads=1)
    assert torch.allclose(loaded.predict(case["x"][:50]), got[:50], atol=1e-5, rtol=0)
    lat = dep.latency(min_run_time=0.05)
    assert isinstance(lat, measure.Latency) and lat.ms_p50 > 0
    assert (lat.batch, lat.threads) == (case["batch"], 1)


def _cases(fast: set[tuple[str, bool]]) -> list:
    """(key, int8) parameters; ExecuTorch's lowering to XNNPACK takes 20-50 s per model on the 2-core
    machine (about 40 export passes), so all but ``fast`` of its cases are marked slow."""
    out = []
    for key in KEYS:
        for int8 in (False, True):
            slow = key == "executorch" and (key, int8) not in fast
            out.append(
                pytest.param(
                    key, int8, id=f"{key}-{'int8' if int8 else 'fp32'}", marks=[pytest.mark.slow] if slow else []
                )
            )
    return out


@pytest.mark.parametrize(("key", "int8"), _cases({("executorch", False)}))
def test_lenet5_round_trip(key, int8, lenet, tmp_path):
    _check_round_trip(key, lenet, int8, tmp_path)


@pytest.mark.data
@pytest.mark.parametrize(("key", "int8"), _cases(set()))
def test_structured_resnet20_round_trip(key, int8, resnet, tmp_path):
    _check_round_trip(key, resnet, int8, tmp_path)


@torch.library.custom_op("prunescope_test::wiggle", mutates_args=())
def _wiggle(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_wiggle.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class _Wiggly(nn.Module):
    """A model with an op no exporter knows (a custom op with no ONNX function and no out variant)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(_wiggle(x))


@pytest.mark.parametrize("key", KEYS)
def test_an_unsupported_op_fails_in_one_line(key):
    rt = _runtime(key)
    model = _Wiggly().eval()
    if key == "torch":  # eager PyTorch runs any op
        assert rt.deploy(model, (4,), batch=2).predict(torch.randn(3, 4)).shape == (3, 3)
        return
    with pytest.raises(RuntimeUnsupported) as info:
        rt.deploy(model, (4,), batch=2)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{key} cannot take this model:")
    assert "wiggle" in message and len(message) < 400


def test_a_missing_package_is_reported_with_the_install_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        runtimes_base.importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a)
    )
    rt = OpenVINORuntime()
    assert rt.available() == "openvino is not installed: pip install openvino"
    with pytest.raises(RuntimeUnsupported, match="openvino is not installed: pip install openvino"):
        rt.deploy(_Wiggly(), (4,))


def test_registry_and_bad_arguments():
    assert list(RUNTIMES) == KEYS
    reasons = [rt.available() for rt in RUNTIMES.values()]
    assert all(r is None or (isinstance(r, str) and "\n" not in r) for r in reasons)
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        get_runtime("tensorrt")
    with pytest.raises(ValueError, match="calibration"):
        get_runtime("torch").deploy(_Wiggly(), (4,), int8=True)
    with pytest.raises(ValueError, match="input_shape"):
        get_runtime("torch").deploy(_Wiggly(), (0,))


def test_channel_scatter_holds_int_planes_and_exports_strictly():
    scatter = ChannelScatter(4, 8)
    x = torch.randn(2, 4, 6, 6)
    program = torch.export.export(scatter, (x,), strict=True)  # no data-dependent guard on the planes
    assert torch.equal(program.module()(x), scatter(x))
    assert isinstance(scatter.out_planes, int) and scatter.planes.tolist() == [4, 8]
    other = ChannelScatter(4, 6)
    other.load_state_dict(scatter.state_dict())  # the ints follow the loaded buffer
    assert (other.in_planes, other.out_planes) == (4, 8) and torch.equal(other(x), scatter(x))
    pruner = scatter_pruner()
    pruner.prune_out_channels(other, [0])
    pruner.prune_in_channels(other, [3])
    assert (other.in_planes, other.out_planes) == (3, 7) and other.planes.tolist() == [3, 7]
    assert other(x[:, :3]).shape == (2, 7, 3, 3)


class _EmptyShortcut(nn.Module):
    """A residual block whose pruned shortcut maps no channel at all (ResNet-20 at 80 % structured)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        empty = torch.empty(0, dtype=torch.long)
        self.shortcut = ChannelScatter(3, 8, src=empty, dst=empty)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((self.conv(x) + self.shortcut(x)).mean((2, 3)))


@pytest.mark.parametrize("key", ["onnxruntime", "openvino"])
def test_a_shortcut_with_no_channel_left_deploys(key):
    torch.manual_seed(0)
    model, x = _EmptyShortcut().eval(), torch.randn(6, 3, 8, 8)
    assert torch.equal(model.shortcut(x), torch.zeros(6, 8, 4, 4))
    dep = _runtime(key).deploy(model, (3, 8, 8), batch=2, threads=1)  # OpenVINO refused the ONNX ScatterND
    with torch.no_grad():
        assert float((dep.predict(x) - model(x)).abs().max()) < FP32_MAX_DIFF


@pytest.mark.slow
def test_torch_pt2e_int8_compiles_and_agrees(lenet, tmp_path):
    """torchao PT2E (X86InductorQuantizer + torch.compile): int8 kernels label, agreement with eager fp32,
    and its .pt2 file (the reference q/dq graph) loads back with the same top-1 answers."""
    if importlib.util.find_spec("torchao") is None:
        pytest.skip("torchao is not installed: pip install torchao")
    rt = TorchRuntime(int8_backend="pt2e")
    dep = rt.deploy(lenet["model"], lenet["shape"], batch=8, threads=1, int8=True, calib=lenet["calib"])
    assert dep.kernels.startswith("torch-inductor int8") and dep.int8
    with torch.no_grad():
        ref = lenet["model"](lenet["x"]).argmax(1)
    got = dep.predict(lenet["x"])
    assert float((got.argmax(1) == ref).float().mean()) >= INT8_AGREEMENT
    (path,) = dep.save(tmp_path / "model")
    loaded = rt.load(path, lenet["shape"], batch=8)
    assert loaded.int8 and "pt2e" in loaded.kernels
    assert float((loaded.predict(lenet["x"]).argmax(1) == got.argmax(1)).float().mean()) >= 0.99
