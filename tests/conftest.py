"""Shared fixtures. Points COMPRESS_DATA_DIR at ../shared/data when it exists (CI and dev machines),
so data-dependent tests run there and skip cleanly on a user's fresh clone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SHARED = ROOT.parent / "shared" / "data"
if "COMPRESS_DATA_DIR" not in os.environ and _SHARED.is_dir():
    os.environ["COMPRESS_DATA_DIR"] = str(_SHARED)
os.environ.setdefault("PRUNESCOPE_OFFLINE", "1")  # tests never download
os.environ.setdefault("PRUNESCOPE_THREADS", "2")
# Explore's runtime selector defaults to "the fastest here", which times every runtime's dense model in a
# worker process; tests pin eager PyTorch so that search runs only in the tests that ask for it.
os.environ.setdefault("PRUNESCOPE_DEFAULT_RUNTIME", "torch")

import torch  # noqa: E402

import compress_core  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)


def data_dir() -> Path | None:
    value = os.environ.get("COMPRESS_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


def has_cifar() -> bool:
    d = data_dir()
    return d is not None and (d / "cifar10" / "test.npz").is_file() and (d / "weights").is_dir()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The one ``data`` marker: tests that need the data dir (CIFAR-10 weights and images) skip cleanly
    on a user's fresh clone, and run in CI where ../shared/data is present."""
    if has_cifar():
        return
    skip = pytest.mark.skip(reason="CIFAR-10 data dir absent (set COMPRESS_DATA_DIR to a folder like ../shared/data)")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_and_isolated_cache(tmp_path_factory, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
