"""Model zoo and data: bundled LeNets always, CIFAR ResNets where the data dir exists."""

import hashlib
import io
import json
from typing import ClassVar

import pytest
import torch

from compress_core import models
from compress_core.base.paths import ASSETS_DIR, MissingFileError, locate, sha256_of
from compress_core.data import sets as data
from compress_core.engine import measure


@pytest.mark.parametrize("model_id", list(models.REGISTRY))
def test_registry_specs_match_the_architecture(model_id):
    spec = models.get_spec(model_id)
    model = models.build(model_id)
    assert measure.count_params(model)[0] == spec.params
    out = model(torch.zeros(2, *spec.input_shape))
    assert out.shape == (2, spec.num_classes)
    assert spec.license and spec.reference_source


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of: lenet5-mnist"):
        models.get_spec("vgg")


@pytest.mark.parametrize("model_id", ["lenet5-mnist", "lenet300-mnist"])
def test_bundled_models_have_cards_that_match_their_weights(model_id):
    card = json.loads((ASSETS_DIR / f"{model_id}.json").read_text())
    assert card["sha256"] == sha256_of(ASSETS_DIR / f"{model_id}.safetensors")
    assert card["reproduce"].startswith(f"python -m compress_core train {model_id}")
    assert card["split"]["train"] == 4000 and card["split"]["heldout"] == 1000


@pytest.mark.parametrize("model_id", ["lenet5-mnist", "lenet300-mnist"])
def test_bundled_models_reach_their_card_accuracy_on_the_heldout_split(model_id):
    model = models.load(model_id)
    held = data.load("mnist", "heldout")
    acc = measure.accuracy(measure.predictions(model, held), held.y).accuracy
    assert acc == pytest.approx(models.get_spec(model_id).reference_accuracy, abs=1e-4)
    assert acc > 0.97


def test_mnist_split_is_fixed_stratified_and_disjoint():
    train, held = data.load("mnist", "train"), data.load("mnist", "heldout")
    assert len(train) == 4000 and len(held) == 1000
    assert torch.equal(held.y.bincount(), torch.full((10,), 100))
    flat_t = {hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in train.x}
    assert not any(hashlib.sha1(x.numpy().tobytes()).hexdigest() in flat_t for x in held.x[:200])


def test_quick_subset_is_deterministic_and_stratified():
    a = data.load("mnist", "train", quick=500)
    b = data.load("mnist", "train", quick=500)
    assert torch.equal(a.y, b.y) and len(a) == 500
    assert torch.equal(a.y.bincount(), torch.full((10,), 50))


def test_missing_weights_say_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path / "nodata"))
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PRUNESCOPE_OFFLINE", "1")
    with pytest.raises(MissingFileError, match=r"weights/resnet20-12fca82f\.th is missing.*put it at"):
        models.load("resnet20-cifar10")
    with pytest.raises(MissingFileError, match="CIFAR-10 test data is missing"):
        data.load("cifar10", "test")


class _FakeResponse(io.BytesIO):
    headers: ClassVar[dict[str, str]] = {"Content-Length": "11"}


def test_download_goes_to_the_cache_with_sha256_check(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESS_DATA_DIR", raising=False)
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PRUNESCOPE_OFFLINE", "0")
    payload = b"hello world"
    good = hashlib.sha256(payload).hexdigest()
    calls = []

    def opener(url):
        calls.append(url)
        return _FakeResponse(payload)

    path = locate("weights/x.th", good, "https://example.invalid/x.th", opener=opener)
    assert path == tmp_path / "weights/x.th" and path.read_bytes() == payload
    assert locate("weights/x.th", good, "https://example.invalid/x.th", opener=opener) == path
    assert len(calls) == 1, "a verified file is not downloaded again"
    with pytest.raises(MissingFileError, match="sha256 mismatch"):
        locate("weights/y.th", "0" * 64, "https://example.invalid/y.th", opener=opener)
    assert not (tmp_path / "weights/y.th").exists(), "a bad download never lands in the cache"
    assert not list((tmp_path / "weights").glob("*.part"))


def test_corrupt_file_in_the_data_dir_is_reported(tmp_path, monkeypatch):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights/resnet20-12fca82f.th").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path))
    with pytest.raises(MissingFileError, match="sha256 does not match"):
        models.load("resnet20-cifar10")


@pytest.mark.data
def test_resnet20_matches_the_published_accuracy_on_the_full_test_set():
    model = models.load("resnet20-cifar10")
    test = data.eval_set("cifar10", "full")
    assert len(test) == 10_000 and test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    acc = measure.accuracy(measure.predictions(model, test), test.y)
    assert acc.accuracy == pytest.approx(0.9173, abs=0.0005)
