"""torchvision ImageNet models (random init: no weights are downloaded here) and image folders."""

from __future__ import annotations

import hashlib
import warnings

import pytest
import torch

from compress_core.base.paths import MissingFileError
from compress_core.data.images import WNIDS_SHA256, class_index, imagenet_wnids, load_image_folder
from compress_core.engine import measure
from compress_core.models import torchvision_zoo as tvz


@pytest.fixture()
def offline_and_empty(tmp_path, monkeypatch):
    """No data dir, an empty cache and an empty torch hub dir: nothing to find on disk."""
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("PRUNESCOPE_OFFLINE", "1")
    return tmp_path


# -- the zoo -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", tvz.NAMES)
def test_copied_meta_matches_torchvision(name):
    from torchvision.models import get_model_weights

    w = get_model_weights(name).DEFAULT
    enum, url, params, acc1, size_mb = tvz.META[name]
    assert (enum, url, params, acc1, size_mb) == (
        str(w),
        w.url,
        w.meta["num_params"],
        w.meta["_metrics"]["ImageNet-1K"]["acc@1"],
        w.meta["_file_size"],
    )
    assert tvz.preprocessing(name + "-imagenet")["resize"] == w.transforms().resize_size[0]


@pytest.mark.parametrize("model_id", tvz.model_ids())
def test_each_model_builds_runs_and_has_the_published_parameter_count(model_id):
    spec = {s.id: s for s in tvz.torchvision_specs()}[model_id]
    model = tvz.load_torchvision(model_id, weights=False)
    assert not model.training
    with torch.no_grad():
        out = model(torch.randn(1, *spec.input_shape))
    assert out.shape == (1, spec.num_classes) == (1, 1000)
    assert measure.count_params(model)[0] == spec.params
    assert 0.6 < spec.reference_accuracy < 0.8 and spec.dataset == "imagefolder"
    assert spec.weights_file.startswith("torchvision/") and spec.weights_url.startswith("https://download.pytorch.org/")


def test_unknown_model_id_is_refused():
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet50-imagenet'"):
        tvz.load_torchvision("resnet50-imagenet", weights=False)


def test_offline_load_names_the_file_and_where_to_put_it(offline_and_empty):
    with pytest.raises(MissingFileError) as err:
        tvz.load_torchvision("resnet18-imagenet")
    msg = str(err.value)
    where = offline_and_empty / "cache" / "torchvision" / "resnet18-f37072fd.pth"
    for part in (
        "resnet18-f37072fd.pth",
        "PRUNESCOPE_OFFLINE=1",
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        str(where),
    ):
        assert part in msg
    assert not tvz.torchvision_available("resnet18-imagenet")


@pytest.fixture()
def local_weights(offline_and_empty, monkeypatch):
    """mobilenet_v3_small weights served from a file:// URL, named like torchvision names them."""
    model = tvz.build_torchvision("mobilenet_v3_small-imagenet")
    src_dir = offline_and_empty / "mirror"
    src_dir.mkdir()
    tmp = src_dir / "weights.pth"
    torch.save(model.state_dict(), tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    source = tvz.WeightsSource(tmp.as_uri(), f"mobilenet_v3_small-{prefix}.pth", prefix)
    monkeypatch.setattr(tvz, "weights_source", lambda model_id: source)
    monkeypatch.setenv("PRUNESCOPE_OFFLINE", "0")
    return model, source, tmp


def test_download_goes_to_the_cache_dir_once_with_a_hash_check(local_weights, offline_and_empty):
    model, source, tmp = local_weights
    loaded = tvz.load_torchvision("mobilenet_v3_small-imagenet")
    cached = offline_and_empty / "cache" / "torchvision" / source.file_name
    assert cached.is_file() and tvz.torchvision_available("mobilenet_v3_small-imagenet")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    tmp.unlink()  # a second load must not download again
    tvz.load_torchvision("mobilenet_v3_small-imagenet")


def test_a_download_with_the_wrong_hash_leaves_nothing_behind(local_weights, offline_and_empty, monkeypatch):
    _, source, _ = local_weights
    bad = tvz.WeightsSource(source.url, "mobilenet_v3_small-00000000.pth", "00000000")
    monkeypatch.setattr(tvz, "weights_source", lambda model_id: bad)
    with pytest.raises(MissingFileError, match="invalid hash value"):
        tvz.load_torchvision("mobilenet_v3_small-imagenet")
    assert list((offline_and_empty / "cache" / "torchvision").iterdir()) == []


def test_a_corrupt_file_on_disk_is_refused(local_weights, offline_and_empty):
    _, source, _ = local_weights
    cached = offline_and_empty / "cache" / "torchvision" / source.file_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the weights")
    with pytest.raises(MissingFileError, match=f"sha256 does not start with {source.hash_prefix}"):
        tvz.load_torchvision("mobilenet_v3_small-imagenet")


def test_an_unwritable_cache_dir_is_reported(local_weights, offline_and_empty, monkeypatch):
    blocker = offline_and_empty / "cache-is-a-file"
    blocker.write_text("x")
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(blocker))
    with pytest.raises(MissingFileError, match="is not writable.*COMPRESS_CACHE_DIR"):
        tvz.load_torchvision("mobilenet_v3_small-imagenet")


# -- ImageNet class ids ---------------------------------------------------------------------------------
def test_wordnet_ids_are_the_imagenet_class_order():
    ids = imagenet_wnids()
    assert len(set(ids)) == 1000 and ids == sorted(ids)
    assert hashlib.sha256(" ".join(ids).encode()).hexdigest() == WNIDS_SHA256
    from torchvision.datasets.imagenette import Imagenette  # an independent list of 10 ids with names

    categories = tvz.categories()
    for wnid, names in Imagenette._WNID_TO_CLASS.items():
        assert categories[ids.index(wnid)] == names[0]


def test_folder_names_map_to_classes():
    assert class_index("goldfish")[0] == 1 and class_index("Great_White_Shark")[0] == 2
    assert class_index("n01443537")[0] == 1 and class_index("Cardigan")[0] == 264
    assert "ambiguous" in class_index("CARDIGAN")[1] and class_index("CARDIGAN")[0] == -1
    assert class_index("n99999999")[0] == -1 and class_index("zebra crossing")[0] == -1
    assert class_index("Dog", ["cat", "dog"]) == (1, "name, case-insensitive")


# -- image folders ----------------------------------------------------------------------------------------
def _images(folder, n, colour=(128, 128, 128), size=(40, 30), fmt="png"):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, tuple((c + 10 * i) % 256 for c in colour)).save(folder / f"img{i}.{fmt}")


def test_class_folders_give_a_labelled_set_in_sorted_order(tmp_path):
    _images(tmp_path / "tench", 4, (200, 40, 40), fmt="jpg")
    _images(tmp_path / "goldfish", 4, (40, 200, 40))
    s = load_image_folder(tmp_path, input_size=64, resize=72)
    assert s.labelled and s.classes == ("goldfish", "tench") and s.class_indices == (1, 0)
    assert s.y.tolist() == [1] * 4 + [0] * 4 and s.x.shape == (8, 3, 64, 64) and s.x.dtype == torch.float32
    assert s.files[0] == "goldfish/img0.png" and len(s) == 8
    again = load_image_folder(tmp_path, input_size=64, resize=72)
    assert torch.equal(again.x, s.x) and again.name == s.name


def test_pixels_are_normalised_with_the_imagenet_constants(tmp_path):
    _images(tmp_path, 1, (255, 0, 128), size=(300, 260))
    s = load_image_folder(tmp_path, input_size=32, resize=32)
    want = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    assert torch.allclose(s.x[0].mean((1, 2)), torch.tensor(want), atol=1e-3)


def test_wordnet_id_folders_and_the_default_size(tmp_path):
    _images(tmp_path / "n01440764", 1)
    _images(tmp_path / "n01443537", 1)
    s = load_image_folder(tmp_path)
    assert s.labelled and s.y.tolist() == [0, 1] and s.x.shape == (2, 3, 224, 224)
    model = tvz.load_torchvision("mobilenet_v3_small-imagenet", weights=False)
    assert measure.predictions(model, s).shape == (2,)


def test_a_flat_folder_is_unlabelled(tmp_path):
    _images(tmp_path, 3)
    s = load_image_folder(tmp_path, input_size=32, resize=40)
    assert not s.labelled and s.y.tolist() == [-1, -1, -1] and any("agreement" in n for n in s.notes)


def test_one_unmapped_class_folder_makes_the_set_unlabelled(tmp_path):
    _images(tmp_path / "goldfish", 1)
    _images(tmp_path / "my_holiday", 1)
    s = load_image_folder(tmp_path, input_size=32, resize=32)
    assert not s.labelled and s.class_indices == (1, -1) and set(s.y.tolist()) == {-1}
    assert any("'my_holiday' unmapped" in n for n in s.notes)


def test_corrupt_images_are_skipped_named_and_counted(tmp_path):
    _images(tmp_path / "goldfish", 2)
    (tmp_path / "goldfish" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        s = load_image_folder(tmp_path, input_size=32, resize=32)
    assert len(s) == 2 and s.skipped[0].startswith("goldfish/broken.jpg: ")
    with pytest.raises(ValueError, match="cannot read image .*broken.jpg"):
        load_image_folder(tmp_path, input_size=32, resize=32, strict=True)


@pytest.mark.parametrize(
    "setup, kwargs, message",
    [
        (lambda p: None, {}, "does not exist"),
        (lambda p: p.write_text("x"), {}, "is not a folder"),
        (lambda p: (p.mkdir(), (p / "readme.txt").write_text("x")), {}, "no images in"),
        (lambda p: (p.mkdir(), (p / "a.png").write_bytes(b"garbage")), {}, "none of the 1 images .* could be read"),
        (lambda p: _images(p, 3), {"limit": 2}, "holds 3 images, more than the limit of 2"),
        (lambda p: (_images(p, 1), _images(p / "goldfish", 1)), {}, "mixes 1 image"),
        (lambda p: _images(p, 1), {"resize": 100, "input_size": 224}, "resize must be an integer >= input_size"),
        (lambda p: _images(p, 1), {"interpolation": "lanczos"}, "interpolation must be one of"),
        (lambda p: _images(p, 1), {"limit": 0}, "limit must be a positive integer"),
    ],
)
def test_bad_folders_are_refused_clearly(tmp_path, setup, kwargs, message):
    target = tmp_path / "images"
    setup(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=message):
            load_image_folder(target, **kwargs)
