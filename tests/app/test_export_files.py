"""Export offers distinct files: the fp32 ONNX with any batch (or batch 1 on request), the int8 ONNX of a
real-int8 recipe, and a deployable file whose button states the size of what it downloads."""

from __future__ import annotations

import io
import zipfile

import onnx
import pytest

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.deploy.runtimes import get_runtime
from compress_core.present.plots import human_bytes
from pages.ui import review_panels, state

from .conftest import new_app, texts

STRUCT = Recipe(prune=PruneSpec(kind="structured", scope="layer", sparsity=0.5, residual=False))
INT8 = Recipe(
    prune=PruneSpec(kind="structured", scope="layer", sparsity=0.5, residual=False), quant=QuantSpec(8, int8=True)
)


def _export(recipe: Recipe):
    at = new_app(recipe=recipe.to_json()).run()
    at.switch_page("pages/export.py").run()
    assert not at.exception and not at.error, texts(at.error)
    return at


def _batch_dim(data: bytes) -> onnx.TensorShapeProto.Dimension:
    return onnx.load_from_string(data).graph.input[0].type.tensor_type.shape.dim[0]


def test_the_onnx_file_takes_any_batch_by_default_and_batch_1_on_request():
    at = _export(STRUCT)
    next(b for b in at.button if b.label == "Build ONNX file").click().run(timeout=300)
    dim = _batch_dim(at.session_state[state.EXPORT_ONNX]["bytes"])
    assert dim.dim_param and not dim.dim_value  # symbolic: one file for every batch size
    assert any("fp32, any batch" in b.proto.label for b in at.get("download_button"))
    at.radio(key=state.W_ONNX_BATCH).set_value("batch 1 only").run()
    next(b for b in at.button if b.label == "Build ONNX file").click().run(timeout=300)
    assert _batch_dim(at.session_state[state.EXPORT_ONNX]["bytes"]).dim_value == 1
    assert any("fp32, batch 1" in b.proto.label for b in at.get("download_button"))


def test_a_real_int8_recipe_offers_its_int8_onnx():
    reason = get_runtime("onnxruntime").available()
    if reason is not None:
        pytest.skip(reason)
    at = _export(INT8)
    assert not any(b.label == "Build the int8 ONNX file" for b in _export(STRUCT).button)  # fp32 recipes: none
    next(b for b in at.button if b.label == "Build the int8 ONNX file").click().run(timeout=300)
    assert not at.exception and not at.error, texts(at.error)
    ((_, data),) = at.session_state[state.EXPORT_ONNX_INT8]["files"].items()
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert any(b.proto.label.startswith("Download int8 ") for b in at.get("download_button"))


def test_the_openvino_button_states_the_size_of_its_zip():
    reason = get_runtime("openvino").available()
    if reason is not None:
        pytest.skip(reason)
    at = _export(STRUCT)
    at.selectbox(key="w_export_runtime").set_value("openvino").run()
    next(b for b in at.button if b.label.startswith("Build the OpenVINO")).click().run(timeout=300)
    assert not at.exception and not at.error, texts(at.error)
    files = at.session_state[state.EXPORT_DEPLOY]["files"]
    assert len(files) == 2  # .xml + .bin, served as one zip
    zipped = review_panels.runtime_panel._zip(files)
    assert zipfile.ZipFile(io.BytesIO(zipped)).namelist() == list(files)
    [label] = [b.proto.label for b in at.get("download_button") if ".zip" in b.proto.label]
    assert (
        f"({human_bytes(len(zipped))};" in label and f"{human_bytes(sum(map(len, files.values())))} unzipped" in label
    )
