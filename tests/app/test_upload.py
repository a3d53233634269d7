"""Bring your own model in the dashboard: upload a file in the sidebar, then every page works on it."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import save
from torch import nn

from compress_core.files.uploads import UploadError
from compress_core.models import load
from pages.ui import catalogue

from .conftest import metric_values, new_app, texts


@pytest.fixture(scope="module")
def lenet_bytes() -> bytes:
    return save(load("lenet5-mnist").state_dict())


@pytest.fixture(scope="module")
def opaque_pt2() -> bytes:
    """A torch.export program of a network that is in no zoo: measurable, not compressible."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)).eval()
    program = torch.export.export(net, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def upload(at, name: str, data: bytes):
    at.file_uploader(key="upload_file").set_value((name, data, "application/octet-stream"))
    return at.run()


# -- the registry, without Streamlit's script runner --------------------------------------------------
def test_register_gives_a_stable_id_a_label_and_a_workbench(lenet_bytes):
    entry = catalogue.register(lenet_bytes, "mine.safetensors")
    assert entry.model_id.startswith("upload-") and len(entry.model_id) == len("upload-") + 8
    assert catalogue.register(lenet_bytes, "mine.safetensors") is entry  # one load per file
    assert entry.label == "Uploaded: mine.safetensors (LeNet-5 (MNIST) architecture)"
    assert catalogue.lookup(entry.model_id) is entry and catalogue.known(entry.model_id) and entry.prunable
    assert catalogue.spec(entry.model_id).input_shape == (1, 28, 28)
    wb = catalogue.build_workbench(entry.model_id)
    assert wb.model_id == entry.model_id and wb.artifact_id == "lenet5-mnist"


def test_a_refused_file_raises_the_loader_message_and_registers_nothing():
    with pytest.raises(UploadError, match="not an accepted format"):
        catalogue.register(b"not a model at all", "junk.pt")
    with pytest.raises(ValueError, match="no longer loaded"):
        catalogue.spec("upload-00000000")


def test_an_opaque_graph_needs_a_dataset(opaque_pt2):
    with pytest.raises(ValueError, match="choose the dataset"):
        catalogue.register(opaque_pt2, "tiny.pt2")
    entry = catalogue.register(opaque_pt2, "tiny.pt2", dataset="mnist")
    assert entry.model_id.endswith("-mnist") and not entry.prunable and catalogue.artifact_id(entry.model_id) is None


# -- the sidebar flow (AppTest) --------------------------------------------------------------------------
def test_uploading_a_lenet5_state_dict_selects_it_and_explore_measures_it(app, lenet_bytes):
    zoo = metric_values(app)
    upload(app, "my_lenet.safetensors", lenet_bytes)
    assert not app.exception and not app.error, texts(app.error)
    model_id = app.session_state["model_id"]
    assert model_id.startswith("upload-") and app.query_params["model"] == model_id
    label = catalogue.label(model_id)  # the file name of the first upload of these bytes in this process
    assert label.startswith("Uploaded: ") and label.endswith(".safetensors (LeNet-5 (MNIST) architecture)")
    assert label in app.selectbox(key="model_id").options
    assert metric_values(app)["Top-1 accuracy"] == zoo["Top-1 accuracy"]  # same weights, same accuracy
    app.slider(key="w_sparsity_pct").set_value(80).run()  # prunable like the zoo model
    assert not app.error, texts(app.error)
    assert metric_values(app)["Non-zero parameters"] != zoo["Non-zero parameters"]


def test_a_bad_upload_shows_one_error_and_keeps_the_model(app):
    upload(app, "whole_model.pt", b"\x80\x04junk that is not a torch file")
    assert not app.exception
    assert app.session_state["model_id"] == "lenet5-mnist"
    assert len(app.error) == 1 and "whole_model.pt" in app.error[0].value
    assert metric_values(app)["Top-1 accuracy"]  # Explore still renders


def test_an_opaque_graph_asks_for_its_dataset_then_measures_dense_only(app, opaque_pt2):
    upload(app, "tiny.pt2", opaque_pt2)
    assert not app.exception and not app.error, texts(app.error)
    assert app.session_state["model_id"] == "lenet5-mnist"  # not usable until the dataset is known
    app.selectbox(key="upload_dataset").set_value("mnist").run()
    assert not app.exception and not app.error, texts(app.error)
    assert app.session_state["model_id"].endswith("-mnist")
    assert "can only evaluate it as uploaded" in texts(app.info)
    assert metric_values(app)["Top-1 accuracy"]
    app.slider(key="w_sparsity_pct").set_value(50).run()  # pruning: a clear message, not a traceback
    assert not app.exception
    assert "no Conv2d/Linear module to prune" in texts(app.error)


def test_a_link_to_an_upload_that_is_gone_falls_back_to_the_default_model():
    at = new_app(model="upload-deadbeef").run()
    assert not at.exception and not at.error
    assert at.session_state["model_id"] == "lenet5-mnist"
    assert "unknown model 'upload-deadbeef'" in texts(at.warning)


def test_an_uploaded_model_stays_on_eager_pytorch_and_export_says_how_to_deploy_it(app, lenet_bytes):
    upload(app, "my_lenet.safetensors", lenet_bytes)
    app.selectbox(key="w_runtime").set_value("onnxruntime").run()  # not available for uploads: eager, and why
    assert not app.exception and not app.error, texts(app.error)
    assert next(m.label for m in app.metric if m.label.startswith("Latency p50")) == "Latency p50 · PyTorch eager"
    assert "uploaded models are measured on eager PyTorch here" in texts(app.caption)
    app.switch_page("pages/export.py").run()
    assert not app.exception and not app.error, texts(app.error)
    assert "--upload FILE --runtime onnxruntime --save-deploy" in texts(app.caption)
