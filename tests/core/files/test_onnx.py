"""ONNX export: the file a user downloads is a valid ONNX model with the compressed shapes."""

from __future__ import annotations

import io

import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from compress_core.base.recipe import PruneSpec
from compress_core.engine.prune.structured import structured_prune_
from compress_core.files.onnx import onnx_bytes
from compress_core.files.uploads import load_upload
from compress_core.models.lenet import LeNet5
from tests.conftest import ROOT

MNIST = (1, 28, 28)


def _weight_shapes(data: bytes) -> list[tuple[int, ...]]:
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto)
    return sorted(
        tuple(numpy_helper.to_array(t).shape) for t in proto.graph.initializer if len(t.dims) in (2, 4)
    )  # conv and linear weights


@pytest.fixture(scope="module")
def dense_shapes() -> list[tuple[int, ...]]:
    return _weight_shapes(onnx_bytes(LeNet5().eval(), MNIST))


def test_lenet5_exports_a_valid_onnx_file_with_named_input_and_output():
    proto = onnx.load_from_string(onnx_bytes(LeNet5().eval(), MNIST))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *MNIST]


def test_structurally_pruned_lenet5_exports_its_smaller_layers(dense_shapes):
    model = LeNet5().eval()
    structured_prune_(model, PruneSpec(kind="structured", sparsity=0.5, scope="layer"), MNIST)
    pruned = _weight_shapes(onnx_bytes(model, MNIST))
    assert (6, 1, 5, 5) in pruned and (8, 6, 5, 5) in pruned and (60, 200) in pruned  # conv1, conv2, fc1
    assert sum(_numel(s) for s in pruned) < 0.5 * sum(_numel(s) for s in dense_shapes)


def test_an_uploaded_torch_export_graph_exports_too():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)).eval()
    buf = io.BytesIO()
    torch.export.save(torch.export.export(net, (torch.zeros(2, *MNIST),)), buf)  # fixed batch of 2
    uploaded = load_upload(buf.getvalue(), "tiny.pt2")
    shapes = _weight_shapes(onnx_bytes(uploaded.model, MNIST))  # valid ONNX (checked inside)
    assert (4, 1, 3, 3) in shapes and {(10, 2704), (2704, 10)} & set(shapes)  # Linear may be stored transposed


def test_bad_input_shape_is_a_clear_value_error():
    with pytest.raises(ValueError, match="input_shape must be positive ints"):
        onnx_bytes(LeNet5(), (1, 0, 28))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_the_file_carries_no_path_of_this_machine():
    """torch.onnx writes each node's Python stack trace (absolute source paths) into the file; the file a
    user ships must not carry them, and its bytes must not depend on where the project is installed."""
    data = onnx_bytes(LeNet5().eval(), MNIST)
    assert str(ROOT).encode() not in data and b"site-packages" not in data and b"stack_trace" not in data
