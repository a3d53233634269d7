"""Bad input across the core, as one table: each row is an input a user can give, the exception type
it must raise and the words the message must contain. ``python -m tests.core.cli.test_bad_input``
prints the table with the message each input really produced (markdown)."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from compress_core import models
from compress_core.base.paths import MissingFileError, locate
from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.data import sets as data_mod
from compress_core.data.images import load_image_folder
from compress_core.engine.prune.unstructured import prunable_layers
from compress_core.engine.stages import apply_recipe
from compress_core.files.uploads import UploadError, load_upload
from compress_core.models.torchvision_zoo import load_torchvision


@dataclass(frozen=True)
class Case:
    area: str
    given: str  # the bad input, in words
    call: Callable[[], object]
    error: type[BaseException]
    words: str  # regex the message must match


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_ROOT = tempfile.TemporaryDirectory(prefix="prunescope-bad-input-")  # removed when the interpreter exits


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp(dir=_ROOT.name))


def lenet_bytes(**kw) -> bytes:
    buf = io.BytesIO()
    torch.save(models.load("lenet5-mnist").state_dict(), buf, **kw)
    return buf.getvalue()


def with_bad_value(value: float) -> bytes:
    from safetensors.torch import save

    state = {k: v.clone() for k, v in models.load("lenet5-mnist").state_dict().items()}
    state["fc1.weight"][0, 0] = value
    return save(state)


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/prunescope-bad-input-PWNED",))


def missing_cifar() -> object:
    with env(COMPRESS_DATA_DIR=str(tmpdir()), PRUNESCOPE_OFFLINE="1", COMPRESS_CACHE_DIR=str(tmpdir())):
        data_mod._load.cache_clear()  # earlier tests may have cached the real test set
        try:
            return data_mod.load("cifar10", "test")
        finally:
            data_mod._load.cache_clear()


def missing_weights(model_id: str) -> Callable[[], object]:
    def call() -> object:
        with env(
            COMPRESS_DATA_DIR=str(tmpdir()),
            PRUNESCOPE_OFFLINE="1",
            COMPRESS_CACHE_DIR=str(tmpdir()),
            TORCH_HOME=str(tmpdir()),
        ):
            return load_torchvision(model_id) if model_id.endswith("imagenet") else models.load(model_id)

    return call


def cache_is_a_file(call: Callable[[], object]) -> Callable[[], object]:
    def wrapped() -> object:
        blocker = tmpdir() / "not-a-folder"
        blocker.write_text("x")
        with env(COMPRESS_CACHE_DIR=str(blocker), PRUNESCOPE_OFFLINE="0"):
            return call()

    return wrapped


def torchvision_blocked() -> object:
    blocker = tmpdir() / "not-a-folder"
    blocker.write_text("x")
    with env(
        COMPRESS_CACHE_DIR=str(blocker),
        PRUNESCOPE_OFFLINE="0",
        COMPRESS_DATA_DIR=str(tmpdir()),
        TORCH_HOME=str(tmpdir()),
    ):
        return load_torchvision("mobilenet_v3_small-imagenet")


def fetch_into_blocked_cache() -> object:
    source = tmpdir() / "file.bin"
    source.write_bytes(b"payload")
    return locate("weights/file.bin", None, source.as_uri(), opener=lambda u: open(source, "rb"))


def results_store() -> object:
    from compress_core.study.store import ResultStore

    return ResultStore()


def artifact_case(make: Callable[[bytes], bytes], **kw) -> Callable[[], object]:
    def call() -> object:
        from compress_core.files.artifact import artifact_bytes, load_artifact

        wb = Workbench("lenet5-mnist")
        good = artifact_bytes(wb.compress(Recipe(PruneSpec("unstructured", "l1", "global", 0.5))), "lenet5-mnist")
        return load_artifact(make(good), **kw)

    return call


def nothing_prunable() -> object:
    return apply_recipe(nn.Sequential(nn.Flatten(), nn.ReLU()), Recipe(PruneSpec("unstructured", "l1", "global", 0.5)))


def image_folder(setup: Callable[[Path], object], **kw) -> Callable[[], object]:
    def call() -> object:
        path = tmpdir() / "images"
        setup(path)
        return load_image_folder(path, **kw)

    return call


CASES = [
    Case(
        "recipe",
        "sparsity -0.1",
        lambda: PruneSpec("unstructured", sparsity=-0.1),
        ValueError,
        r"sparsity must be between 0 and 0.99 \(a fraction, not a percent\); got -0.1",
    ),
    Case(
        "recipe",
        "sparsity 1.0",
        lambda: PruneSpec("unstructured", sparsity=1.0),
        ValueError,
        "sparsity must be between 0 and 0.99",
    ),
    Case(
        "recipe",
        "sparsity 99 (a percent)",
        lambda: PruneSpec("unstructured", sparsity=99),
        ValueError,
        "a fraction, not a percent.*got 99",
    ),
    Case(
        "recipe",
        "sparsity NaN",
        lambda: PruneSpec("unstructured", sparsity=float("nan")),
        ValueError,
        "sparsity must be between",
    ),
    Case(
        "recipe",
        "sparsity '50%' (a string)",
        lambda: PruneSpec("unstructured", sparsity="50%"),
        ValueError,
        "sparsity must be a number",
    ),
    Case("recipe", "bits 5", lambda: QuantSpec(5), ValueError, "bits must be one of 1, 2, 3, 4, 6, 8, 16, 32; got 5"),
    Case("recipe", "bits 0", lambda: QuantSpec(0), ValueError, "bits must be one of .*; got 0"),
    Case("recipe", "bits 64", lambda: QuantSpec(64), ValueError, "bits must be one of .*; got 64"),
    Case(
        "recipe",
        "int8 kernels with 4 bits",
        lambda: QuantSpec(4, int8=True),
        ValueError,
        "real int8 kernels need bits=8",
    ),
    Case("recipe", "recipe JSON '{'", lambda: Recipe.from_json("{"), ValueError, "recipe is not valid JSON"),
    Case(
        "pipeline",
        "skip a layer the model lacks",
        lambda: prunable_layers(models.load("lenet5-mnist"), ["conv9"]),
        ValueError,
        "skip names a layer 'conv9' that the model does not have",
    ),
    Case(
        "pipeline",
        "model with nothing prunable",
        nothing_prunable,
        ValueError,
        "no (prunable )?Conv2d/Linear (layer|module)",
    ),
    Case("pipeline", "unknown model id", lambda: Workbench("vgg99"), ValueError, "unknown model 'vgg99'"),
    Case(
        "pipeline",
        "eval mode 'fast'",
        lambda: data_mod.eval_set("mnist", "fast"),
        ValueError,
        "eval must be 'quick' or 'full'",
    ),
    Case("upload", "empty file", lambda: load_upload(b"", "m.pt"), UploadError, r"empty \(0 bytes\)"),
    Case(
        "upload",
        "truncated torch.save zip",
        lambda: load_upload(lenet_bytes()[:20_000], "m.pt"),
        UploadError,
        "truncated or corrupt",
    ),
    Case(
        "upload",
        "truncated legacy torch.save",
        lambda: load_upload(lenet_bytes(_use_new_zipfile_serialization=False)[:20_000], "m.pt"),
        UploadError,
        "truncated or corrupt",
    ),
    Case(
        "upload",
        "oversized (250 kB, limit 100 kB)",
        lambda: load_upload(lenet_bytes(), "m.pt", max_bytes=100_000),
        UploadError,
        "bytes, over the 100,000 bytes upload limit",
    ),
    Case(
        "upload",
        "wrong extension (.onnx)",
        lambda: load_upload(b"\x08\x07", "m.onnx"),
        UploadError,
        "not an accepted format",
    ),
    Case(
        "upload",
        "PNG renamed to .pt",
        lambda: load_upload(b"\x89PNG\r\n\x1a\n" + bytes(64), "m.pt"),
        UploadError,
        "not an accepted format.*starts with",
    ),
    Case(
        "upload",
        "pickle whose __reduce__ calls os.system",
        lambda: load_upload(pickle.dumps(RunsCode(), protocol=2), "m.pt"),
        UploadError,
        "not an accepted format.*Pickled code is refused",
    ),
    Case(
        "upload",
        "whole nn.Module saved with torch.save(model)",
        lambda: load_upload(_module_bytes(), "m.pt"),
        UploadError,
        "needs compress_core.models.lenet.LeNet5",
    ),
    Case(
        "upload",
        "NaN weight",
        lambda: load_upload(with_bad_value(float("nan")), "m.safetensors"),
        UploadError,
        "tensor 'fc1.weight' holds 1 NaN and 0 Inf",
    ),
    Case(
        "upload",
        "Inf weight",
        lambda: load_upload(with_bad_value(float("inf")), "m.safetensors"),
        UploadError,
        "tensor 'fc1.weight' holds 0 NaN and 1 Inf",
    ),
    Case(
        "upload",
        "state_dict for the wrong architecture",
        lambda: load_upload(lenet_bytes(), "m.pt", arch="lenet300-mnist"),
        UploadError,
        "does not fit lenet300-mnist: 5 shape mismatches: fc1.weight is \\(120, 400\\) in the file",
    ),
    Case(
        "data",
        "COMPRESS_DATA_DIR empty, offline: CIFAR-10",
        missing_cifar,
        MissingFileError,
        "CIFAR-10 test data is missing: put cifar10/test.npz under",
    ),
    Case(
        "data",
        "COMPRESS_DATA_DIR empty, offline: ResNet-20 weights",
        missing_weights("resnet20-cifar10"),
        MissingFileError,
        "weights/resnet20-12fca82f.th is missing: looked in",
    ),
    Case(
        "data",
        "offline, no torchvision weights",
        missing_weights("resnet18-imagenet"),
        MissingFileError,
        "resnet18-f37072fd.pth .* is missing.*PRUNESCOPE_OFFLINE=1",
    ),
    Case(
        "cache",
        "download into a cache dir that is a file",
        cache_is_a_file(fetch_into_blocked_cache),
        MissingFileError,
        "downloading it from .* failed",
    ),
    Case(
        "cache",
        "torchvision download into a cache dir that is a file",
        torchvision_blocked,
        MissingFileError,
        "cannot be downloaded: the cache dir .* is not writable",
    ),
    Case(
        "cache",
        "results store in a cache dir that is a file",
        cache_is_a_file(results_store),
        ValueError,
        "cannot write the results store",
    ),
    Case("artifact", "empty artefact", artifact_case(lambda good: b""), ValueError, "truncated or empty"),
    Case("artifact", "truncated artefact", artifact_case(lambda good: good[: len(good) // 2]), ValueError, "truncated"),
    Case(
        "artifact",
        "oversized artefact",
        artifact_case(lambda good: good, max_bytes=1000),
        ValueError,
        "over the 1,000-byte limit",
    ),
    Case(
        "artifact",
        "torch.save file given as an artefact",
        artifact_case(lambda good: lenet_bytes()),
        ValueError,
        "not a PruneScope artefact",
    ),
    Case("images", "image folder that does not exist", image_folder(lambda p: None), ValueError, "does not exist"),
    Case("images", "folder without images", image_folder(lambda p: p.mkdir()), ValueError, "no images in"),
    Case(
        "images",
        "only a corrupt image",
        image_folder(lambda p: (p.mkdir(), (p / "a.jpg").write_bytes(b"x"))),
        ValueError,
        "none of the 1 images .* could be read",
    ),
]


def _module_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save(models.load("lenet5-mnist"), buf)
    return buf.getvalue()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.given}" for c in CASES])
def test_bad_input_is_refused_with_a_clear_message(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.error, match=case.words) as err:
            case.call()
    text = str(err.value)
    assert "Traceback" not in text and len(text) < 700
    assert not Path("/tmp/prunescope-bad-input-PWNED").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores read-only permissions")
def test_read_only_cache_dir_is_reported(tmp_path, monkeypatch):
    from compress_core.study import store

    tmp_path.chmod(0o555)
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    try:
        with pytest.raises(store.StoreError, match="cannot write the results store"):
            store.ResultStore()
    finally:
        tmp_path.chmod(0o755)


def test_zero_sparsity_changes_nothing(wb):
    r = wb.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.0)), MeasureSettings(latency=False))
    assert r.params_nonzero == r.params_total == 61_706 and r.accuracy == r.dense_accuracy and r.agreement == 1.0


def test_ninety_nine_percent_sparsity_keeps_exactly_one_percent(wb):
    spec = PruneSpec("unstructured", "l1", "global", 0.99)
    n = sum(m.weight.numel() for _, m in prunable_layers(wb.model, spec.skip))
    r = wb.evaluate(Recipe(spec), MeasureSettings(latency=False))
    assert r.params_total == 61_706 and r.params_nonzero == r.params_total - round(0.99 * n)
    assert 0.0 <= r.accuracy <= r.dense_accuracy


def markdown_table() -> str:
    rows = ["| area | bad input | exception | message |", "| --- | --- | --- | --- |"]
    for case in CASES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                case.call()
            kind, text = "(none)", "NOT REFUSED"
        except Exception as exc:
            kind, text = type(exc).__name__, str(exc)
        rows.append(f"| {case.area} | {case.given} | {kind} | {text.replace('|', '/').replace(chr(10), ' ')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    os.environ.setdefault("COMPRESS_CACHE_DIR", str(tmpdir()))
    print(markdown_table())
