"""Workbenches the core tests share: LeNet-5 once per test module (its caches stay within the module),
and a fresh ResNet-20 per test, which skips without the CIFAR-10 data dir (the tests also carry the
``data`` marker, so ``-m "not data"`` still leaves them out)."""

from __future__ import annotations

import pytest

from compress_core.bench.workbench import Workbench
from tests.conftest import has_cifar


@pytest.fixture(scope="module")
def wb() -> Workbench:
    """LeNet-5 on MNIST (bundled weights), shared by the tests of one module."""
    return Workbench("lenet5-mnist")


@pytest.fixture
def resnet20() -> Workbench:
    """ResNet-20 on CIFAR-10, fresh for each test."""
    if not has_cifar():
        pytest.skip("CIFAR-10 data dir absent (set COMPRESS_DATA_DIR to a folder like ../shared/data)")
    return Workbench("resnet20-cifar10")
