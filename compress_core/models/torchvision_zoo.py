"""torchvision's ImageNet classifiers, through its weights API, with honest offline behaviour.

Four small ImageNet-1K models: resnet18, mobilenet_v2, mobilenet_v3_small and efficientnet_b0.
Their specs (parameters, reference top-1, license) come from the weights enum's ``meta``; the
architecture comes from ``torchvision.models.get_model(name, weights=None)``.

Weights are never downloaded silently or in tests. ``load_torchvision`` looks for the file (named
as torchvision names it, e.g. ``resnet18-f37072fd.pth``) in, in order:
``$COMPRESS_DATA_DIR/torchvision/``, ``$COMPRESS_DATA_DIR/weights/``, the cache dir
``paths.cache_dir()/torchvision/`` and torch hub's own cache (``torch.hub.get_dir()/checkpoints``,
read only). If it is in none of them and downloads are allowed (``PRUNESCOPE_OFFLINE`` unset), it
is downloaded once into the cache dir with a progress bar; torchvision publishes only the first 8
hex digits of each file's sha256 (in the file name), and that prefix is checked before the file
appears, and again whenever a found file is used. Offline, ``MissingFileError`` names the file,
every place searched, the URL, and where to put it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from compress_core.base.paths import MissingFileError, cache_dir, data_dir, downloads_allowed, fetch, sha256_matches
from compress_core.models.spec import ModelSpec

NAMES = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")
TITLES = {
    "resnet18": "ResNet-18",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_small": "MobileNetV3-Small",
    "efficientnet_b0": "EfficientNet-B0",
}
SUFFIX = "-imagenet"
LICENSE = "BSD-3-Clause (torchvision); weights: see torchvision docs"
INPUT_SHAPE = (3, 224, 224)
# torchvision's DEFAULT weights, copied from their ``meta`` so that building the registry does not
# import torchvision (seconds on a busy machine); tests/core/models/test_torchvision_zoo.py checks each value
# against torchvision. name: (weights enum, url, num_params, ImageNet-1K acc@1 %, file MB)
META = {
    "resnet18": (
        "ResNet18_Weights.IMAGENET1K_V1",
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        11_689_512,
        69.758,
        44.661,
    ),
    "mobilenet_v2": (
        "MobileNet_V2_Weights.IMAGENET1K_V2",
        "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth",
        3_504_872,
        72.154,
        13.598,
    ),
    "mobilenet_v3_small": (
        "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
        "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth",
        2_542_856,
        67.668,
        9.829,
    ),
    "efficientnet_b0": (
        "EfficientNet_B0_Weights.IMAGENET1K_V1",
        "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
        5_288_548,
        77.692,
        20.451,
    ),
}


@dataclass(frozen=True)
class WeightsSource:
    url: str
    file_name: str  # torch hub convention: <name>-<first 8 hex of sha256>.<ext>
    hash_prefix: str  # leading hex digits of the file's sha256 ("" = unchecked)
    size_mb: float | None = None


def model_ids() -> list[str]:
    return [n + SUFFIX for n in NAMES]


def _name(model_id: str) -> str:
    name = model_id.removesuffix(SUFFIX)
    if not model_id.endswith(SUFFIX) or name not in NAMES:
        raise ValueError(f"unknown torchvision model {model_id!r}; choose one of: {', '.join(model_ids())}")
    return name


@functools.cache
def _weights(name: str):
    """The weights enum member torchvision recommends (``DEFAULT``) for ``name``."""
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def weights_source(model_id: str) -> WeightsSource:
    _, url, _, _, size_mb = META[_name(model_id)]
    file_name = url.rsplit("/", 1)[-1]
    prefix = file_name.rsplit(".", 1)[0].rsplit("-", 1)[-1]
    prefix = prefix if len(prefix) >= 8 and all(c in "0123456789abcdef" for c in prefix) else ""
    return WeightsSource(url, file_name, prefix, size_mb)


def preprocessing(model_id: str) -> dict:
    """Keyword arguments for ``imagefolder.load_image_folder`` that match the weights' own transforms."""
    t = _weights(_name(model_id)).transforms()
    return {"input_size": int(t.crop_size[0]), "resize": int(t.resize_size[0]), "interpolation": t.interpolation.value}


def categories() -> list[str]:
    """The 1,000 ImageNet-1K class names in class-index order (same for all four models)."""
    return list(_weights(NAMES[0]).meta["categories"])


def _spec(name: str):
    enum, url, params, acc1, _ = META[name]
    src = weights_source(name + SUFFIX)
    return ModelSpec(
        id=name + SUFFIX,
        name=f"{TITLES[name]} (ImageNet)",
        dataset="imagefolder",
        input_shape=INPUT_SHAPE,
        num_classes=1000,
        params=params,
        reference_accuracy=round(acc1 / 100, 5),
        reference_source=f"torchvision {enum} meta: ImageNet-1K validation acc@1 {acc1}% (single 224 crop)",
        license=LICENSE,
        builder=functools.partial(build_torchvision, name + SUFFIX),
        weights_file=f"torchvision/{src.file_name}",
        weights_url=url,
    )


def torchvision_specs() -> list:
    """One ``ModelSpec`` per model, for the registry (``compress_core.models.REGISTRY``)."""
    return [_spec(n) for n in NAMES]


def build_torchvision(model_id: str) -> nn.Module:
    """The architecture with fresh random weights (no download, ever)."""
    from torchvision.models import get_model

    return get_model(_name(model_id), weights=None)


def _candidates(file_name: str) -> list[Path]:
    roots = []
    if (root := data_dir()) is not None:
        roots += [root / "torchvision", root / "weights"]
    roots.append(cache_dir() / "torchvision")
    roots.append(Path(torch.hub.get_dir()) / "checkpoints")
    return [r / file_name for r in roots]


def _download(src: WeightsSource, model_id: str, where: str) -> Path:
    dest = cache_dir() / "torchvision" / src.file_name
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(dest.parent, os.W_OK):
            raise PermissionError("folder is not writable")
    except OSError as exc:
        raise MissingFileError(
            f"{src.file_name} (weights of {model_id}) is not on disk (looked in {where}) and cannot be downloaded: "
            f"the cache dir {dest.parent} is not writable ({exc.strerror or exc}). Set COMPRESS_CACHE_DIR to a "
            f"writable folder, or put the file from {src.url} into {_candidates(src.file_name)[0].parent}"
        ) from None
    try:
        fetch(src.url, dest, None, sha256_prefix=src.hash_prefix or None)
    except OSError as exc:  # network, disk or hash errors: say what to do instead
        raise MissingFileError(
            f"{src.file_name} (weights of {model_id}) is not on disk (looked in {where}) and downloading it from "
            f"{src.url} failed: {exc}. Download it by hand and put it at {dest}"
        ) from None
    return dest


def weights_path(model_id: str) -> Path:
    """The verified weights file: found on disk, or downloaded once into the cache dir."""
    src = weights_source(model_id)
    candidates = _candidates(src.file_name)
    for path in candidates:
        if path.is_file():
            if not sha256_matches(path, prefix=src.hash_prefix):
                raise MissingFileError(
                    f"{path} exists but its sha256 does not start with {src.hash_prefix} as its name promises; "
                    f"the file is corrupt or a different version: delete it and fetch it again from {src.url}"
                )
            return path
    where = ", ".join(str(p.parent) for p in candidates)
    if not downloads_allowed():
        size = f", {src.size_mb:.1f} MB" if src.size_mb else ""
        raise MissingFileError(
            f"{src.file_name} (torchvision ImageNet weights of {model_id}{size}) is missing: looked in {where}. "
            f"Downloads are switched off (PRUNESCOPE_OFFLINE=1): download {src.url} and put it at "
            f"{cache_dir() / 'torchvision' / src.file_name} (or in $COMPRESS_DATA_DIR/torchvision/), "
            f"or unset PRUNESCOPE_OFFLINE on a connected machine"
        )
    return _download(src, model_id, where)


def torchvision_available(model_id: str) -> bool:
    """True if ``load_torchvision(model_id)`` would succeed without a download (no hash check here)."""
    return any(p.is_file() for p in _candidates(weights_source(model_id).file_name))


def load_torchvision(model_id: str, weights: bool = True) -> nn.Module:
    """The model in eval mode: pretrained (``weights=True``) or random init (``weights=False``, for tests)."""
    model = build_torchvision(model_id)
    if weights:
        path = weights_path(model_id)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:
            raise ValueError(f"weights in {path} do not load into {model_id}: {exc}") from None
    return model.eval()
