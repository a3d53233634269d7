"""The artefact package: same bytes as the single-module writer, architecture rebuilt through
prune.skeleton, and no import of the orchestrator (pipeline) from the file format."""

import ast
import hashlib
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from torch import nn

from compress_core import models
from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.records import Compressed
from compress_core.engine.prune.scatter import ChannelScatter
from compress_core.engine.prune.skeleton import apply_skeleton_, skeleton
from compress_core.engine.quantize import quantize_tensor
from compress_core.engine.stages import apply_recipe
from compress_core.files import artifact
from compress_core.files.artifact import artifact_bytes, load_artifact
from compress_core.models.cifar_resnet import PadShortcut
from tests.conftest import ROOT

PACKAGE = ROOT / "compress_core" / "files" / "artifact"


# -- models with weights that depend on nothing but their position (no RNG) ----------------------
def _fill_(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for i, (name, t) in enumerate(model.state_dict().items()):
            if t.is_floating_point():
                wave = torch.sin(torch.arange(t.numel(), dtype=torch.float64) * 0.37 + i).reshape(t.shape)
                t.copy_(1 + 0.5 * wave if name.endswith("running_var") else wave)
    return model.eval()


def _golden_lenet() -> Compressed:
    """LeNet-5, weights |w| <= 0.5 masked off, every Conv/Linear weight 4-bit asymmetric per channel."""
    m = _fill_(models.build("lenet5-mnist"))
    masks, qcodes = {}, {}
    with torch.no_grad():
        for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
            w = m.get_submodule(name).weight
            masks[name] = w.abs() > 0.5
            q = quantize_tensor(w * masks[name], 4, "asymmetric", per_channel=True)
            w.copy_(q.dequantize())
            qcodes[name] = q
    recipe = Recipe(
        prune=PruneSpec(kind="unstructured", sparsity=0.5),
        quant=QuantSpec(bits=4, scheme="asymmetric", granularity="per_channel"),
    )
    return Compressed(model=m, float_model=m, recipe=recipe, masks=masks, qcodes=qcodes, simulated=["golden"])


def _golden_resnet20() -> Compressed:
    """ResNet-20 with a 12-channel stage-1 stream (PadShortcut 12 -> 32) and layer3.0's shortcut swapped
    for a ChannelScatter that keeps every other channel: planes, a swap, narrowed shapes, int64 maps."""
    m = models.build("resnet20-cifar10")
    m.conv1, m.bn1 = nn.Conv2d(3, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12)
    for block in m.layer1:
        block.conv1 = nn.Conv2d(12, 16, 3, padding=1, bias=False)
        block.conv2, block.bn2 = nn.Conv2d(16, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12)
    m.layer2[0].conv1 = nn.Conv2d(12, 32, 3, stride=2, padding=1, bias=False)
    m.layer2[0].shortcut.in_planes = 12
    m.layer3[0].shortcut = ChannelScatter(32, 64, torch.arange(0, 32, 2), torch.arange(16, 64, 3))
    m = _fill_(m)
    return Compressed(model=m, float_model=m, recipe=Recipe(), simulated=[])


def _digest(data: bytes) -> dict[str, str]:
    """sha256 of the tensor data and of the header without ``meta`` (it names the writer's version)."""
    *_, header_len, _, _, _ = artifact.PREAMBLE.unpack_from(data)
    body = zlib.decompressobj(-15).decompress(data[artifact.PREAMBLE.size :])
    header = {k: v for k, v in json.loads(body[:header_len]).items() if k != "meta"}
    return {
        "header": hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:16],
        "data": hashlib.sha256(body[header_len:]).hexdigest()[:16],
    }


# -- end of the golden builders (also run against the single-module artifact.py) -----------------


# Written by compress_core/files/artifact/__init__.py as of commit 13c6992 (the last single-module version).
GOLDEN = {
    "lenet": {"header": "7e28f2b6f707b5d4", "data": "2e85a83c7daada5c"},
    "resnet20": {"header": "67314bcc6d9e67c4", "data": "1a9b132838855e7e"},
}


@pytest.mark.parametrize(
    "name, build, shape", [("lenet", _golden_lenet, (1, 28, 28)), ("resnet20", _golden_resnet20, (3, 32, 32))]
)
def test_the_package_writes_what_the_single_module_wrote(name, build, shape):
    comp = build()
    data = artifact_bytes(comp, "lenet5-mnist" if name == "lenet" else "resnet20-cifar10")
    assert _digest(data) == GOLDEN[name]
    loaded = load_artifact(data)
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), comp.model(x))
    assert artifact_bytes(loaded.to_compressed(), loaded.model_id) == data


# -- one way to rebuild: the loader's skeleton is the pruned model's skeleton ---------------------
def _stored_skeleton(data: bytes) -> dict:
    """The skeleton the loader derives from a file (header + decoded tensors)."""
    from compress_core.files.artifact import architecture, container, model  # the package's own parts

    header, tensors = container.open_body(data, artifact.DEFAULT_MAX_BYTES)
    ref, planes = architecture.reference(header["model_id"], header)
    state, _, _ = model._decode_all(tensors, header["tensors"], [], False)
    return architecture.stored_skeleton(ref, {r["name"]: tuple(r["shape"]) for r in header["tensors"]}, state, planes)


def _structured(model_id: str, shape, sparsity=0.5, **quant) -> Compressed:
    structured = pytest.importorskip("compress_core.engine.prune.structured")
    torch.manual_seed(0)
    m = models.build(model_id).eval()
    structured.structured_prune_(m, PruneSpec(kind="structured", sparsity=sparsity), shape)
    return apply_recipe(m, Recipe(quant=QuantSpec(**quant)))


@pytest.mark.parametrize("model_id, shape", [("lenet5-mnist", (1, 28, 28)), ("resnet20-cifar10", (3, 32, 32))])
def test_structured_artefact_is_rebuilt_from_the_pruned_models_skeleton(model_id, shape):
    comp = _structured(model_id, shape, bits=4)
    data = artifact_bytes(comp, model_id)
    assert _stored_skeleton(data) == skeleton(comp.float_model)
    loaded = load_artifact(data)
    assert skeleton(loaded.float_model) == skeleton(comp.float_model)
    assert [type(m) for m in loaded.float_model.modules()] == [type(m) for m in comp.float_model.modules()]
    x = torch.randn(8, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), comp.model(x))


def test_structured_depthwise_mobilenet_loads():
    """Grouped convolutions keep their groups per channel: a channel-pruned MobileNetV2 (depthwise
    convs) loads. The single-module loader kept the dense ``groups`` and refused to run it."""
    pytest.importorskip("torchvision")
    comp = _structured("mobilenet_v2-imagenet", (3, 224, 224), sparsity=0.3, bits=32)
    dense = dict(models.build("mobilenet_v2-imagenet").named_modules())
    pruned = {n: m.groups for n, m in comp.float_model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1}
    assert any(groups != dense[n].groups for n, groups in pruned.items())
    loaded = load_artifact(artifact_bytes(comp, "mobilenet_v2-imagenet"))
    assert skeleton(loaded.float_model) == skeleton(comp.float_model)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), comp.model(x))


def test_skeleton_covers_shortcut_planes_and_swaps_without_maps():
    m = models.build("resnet20-cifar10").eval()
    assert skeleton(m)["layer2.0.shortcut"] == {"type": "PadShortcut", "in": 16, "out": 32}
    x = torch.randn(2, 16, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = m.layer2[0].shortcut(x)
        apply_skeleton_(
            m,
            {
                "layer2.0.shortcut": {"type": "ChannelScatter", "in": 16, "out": 32},
                "layer3.0.shortcut": {"type": "PadShortcut", "in": 20, "out": 64},
            },
        )
        assert isinstance(m.layer2[0].shortcut, ChannelScatter) and torch.equal(m.layer2[0].shortcut(x), want)
    assert isinstance(m.layer3[0].shortcut, PadShortcut) and m.layer3[0].shortcut.in_planes == 20


# -- the file format sits below the orchestrator ---------------------------------------------------
def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every compress_core module ``path`` imports, function bodies included."""
    package = "compress_core." + ".".join(path.relative_to(ROOT / "compress_core").with_suffix("").parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("compress_core")}


def test_the_artifact_package_never_imports_the_workbench_or_saved():
    files = sorted(PACKAGE.glob("*.py"))
    assert files and not (ROOT / "compress_core" / "files" / "artifact.py").exists()
    for path in files:
        bad = {m for m in _imported_modules(path) if m.split(".")[:2] == ["compress_core", "bench"]}
        assert not bad, f"{path.name} imports {bad}"
        assert len(path.read_text().splitlines()) < 400, path.name


def test_importing_the_artifact_package_loads_no_pipeline():
    code = (
        "import sys, compress_core.files.artifact\n"
        "print(sorted(m for m in sys.modules if m in ('compress_core.bench.workbench', 'compress_core.bench.saved')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_saved_measures_through_the_package():
    from compress_core.bench import saved

    assert saved.load_artifact is artifact.load_artifact
    assert artifact.SIZE_METHOD == "PruneScope artefact file (.psz)"
