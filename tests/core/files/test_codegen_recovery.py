"""Recipe -> code, one story with the card ("One story on every page"): the generated ``prunescope_recipe.py``
applies the recipe's recovery (none / bn / reconstruct) as the Workbench does, and run as a script it
evaluates its model on the card's images and prints the card's accuracy beside its own.

Each file runs in a subprocess, as a user runs it, and its predictions must equal the Workbench's on the same
images, image for image: the file recovers with the same ``compress_core.engine.recover.recover_`` call, on the
same 1,024 seeded training images in batches of 64, with the same seed, keep-masks and k-bit codes, and
calibrates int8 on the first 256 of them, as the Workbench does; it evaluates in batches of 100, fp32 conv
nets in channels_last, as ``bench.parts.predict`` does. LeNet-5 has no BatchNorm, so its ``bn`` level does not
exist: there the file refuses exactly as the Workbench does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.parts import predict
from compress_core.bench.workbench import Workbench
from compress_core.files.codegen import recipe_code
from tests.conftest import ROOT

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

S, U = "structured", "unstructured"
STRUCTURED_INT8 = (PruneSpec(S, "l1", "layer", 0.4), QuantSpec(8, int8=True))  # the issue's LeNet-5 recipe
UNSTRUCTURED_4BIT = (PruneSpec(U, "l1", "global", 0.7), QuantSpec(4))  # keep-masks and k-bit codes to keep
LINE = re.compile(r"top-1 on (\S+): (\d+)/(\d+) = [\d.]+%; PruneScope's card: ([\d.]+)%")


@pytest.fixture(scope="module")
def benches() -> dict[str, Workbench]:
    return {}


def _bench(benches: dict[str, Workbench], model_id: str) -> Workbench:
    if model_id not in benches:
        benches[model_id] = Workbench(model_id)
    return benches[model_id]


def run_file(code: str, folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python prunescope_recipe.py ARGS`` in ``folder``, with this checkout's compress_core importable."""
    path = folder / "prunescope_recipe.py"
    path.write_text(code)
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def _same_as_the_card(wb: Workbench, recipe: Recipe, folder: Path) -> None:
    res = wb.evaluate(recipe, MeasureSettings(latency=False))
    code = recipe_code(recipe, wb.model_id, card=res)
    assert f"CARD_ACCURACY: float | None = {res.accuracy!r}" in code
    run = run_file(code, folder, "preds.pt")
    assert run.returncode == 0, run.stderr[-3000:]
    found = LINE.search(run.stdout)
    assert found, run.stdout
    name, correct, n, card = found.groups()
    assert name == res.eval_set and int(n) == res.eval_samples
    assert int(correct) == round(res.accuracy * res.eval_samples)  # its accuracy is the card's ...
    assert float(card) == pytest.approx(100 * res.accuracy, abs=0.005)  # ... and it prints the card's beside it
    comp = wb.compressed(recipe)
    want = predict(comp.model, comp.kernels, wb.eval_data("quick"))
    assert torch.equal(torch.load(folder / "preds.pt"), want)  # image for image


@pytest.mark.slow  # an interpreter start and a recovery each
@pytest.mark.parametrize(
    "prune_spec, quant, recovery",
    [(*STRUCTURED_INT8, "none"), (*STRUCTURED_INT8, "reconstruct"), (*UNSTRUCTURED_4BIT, "reconstruct")],
    ids=["none", "reconstruct", "reconstruct-masks-4bit"],
)
def test_a_lenet5_file_scores_what_its_card_says(benches, tmp_path, prune_spec, quant, recovery):
    _same_as_the_card(_bench(benches, "lenet5-mnist"), Recipe(prune_spec, quant, recovery=recovery), tmp_path)


def test_the_issues_lenet5_file_recovers_and_says_how_to_install(benches):
    code = recipe_code(Recipe(*STRUCTURED_INT8, recovery="reconstruct"), "lenet5-mnist")
    head = code.split('"""')[1]
    assert "pip install torch torch-pruning" in head and "compress_core" in head
    assert 'recover_(model, dense, "reconstruct", calib_batches, seed=0)' in code
    assert "PruneScope's own step" in code  # the step is ours, and the file says so
    assert code.index("recover_(model") < code.index("prepare_fx(")  # recovered on float weights, then int8
    assert "CARD_ACCURACY: float | None = None" in code  # not measured: nothing to compare with


def test_the_file_evaluates_on_the_set_its_card_was_measured_on():
    full = {"accuracy": 0.9812, "eval_set": "mnist-test-10k", "eval_samples": 10000}
    code = recipe_code(Recipe(*UNSTRUCTURED_4BIT, recovery="reconstruct"), "lenet5-mnist", card=full)
    assert "CARD_ACCURACY: float | None = 0.9812" in code
    assert 'CARD_EVAL = "full"  # its images: mnist-test-10k (10,000 test images)' in code
    quick = {**full, "eval_set": "mnist-test-10k-quick1000", "eval_samples": 1000}
    assert 'CARD_EVAL = "quick"' in recipe_code(Recipe(*UNSTRUCTURED_4BIT), "lenet5-mnist", card=quick)
    code = recipe_code(Recipe(*UNSTRUCTURED_4BIT, recovery="reconstruct"), "lenet5-mnist")
    assert "masks=masks, qcodes=qcodes or None, quant=QUANT" in code  # what reconstruction keeps
    assert 'QUANT = QuantSpec(4, "symmetric", "per_channel")' in code


@pytest.mark.slow  # one interpreter start
def test_bn_recovery_of_lenet5_is_refused_by_the_file_as_by_the_workbench(benches, tmp_path):
    """LeNet-5 has no BatchNorm: recovery ``bn`` has nothing to work on, in the Workbench and in the file."""
    recipe = Recipe(*STRUCTURED_INT8, recovery="bn")
    with pytest.raises(ValueError, match="no BatchNorm") as refused:
        _bench(benches, "lenet5-mnist").evaluate(recipe, MeasureSettings(latency=False))
    run = run_file(recipe_code(recipe, "lenet5-mnist"), tmp_path)
    assert run.returncode == 1 and str(refused.value) in run.stderr


@pytest.mark.slow  # one interpreter start
def test_a_file_without_its_data_says_so_and_exits_cleanly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"COMPRESS_DATA_DIR": str(empty), "COMPRESS_CACHE_DIR": str(empty), "PRUNESCOPE_OFFLINE": "1"}
    run = run_file(recipe_code(Recipe(*STRUCTURED_INT8, recovery="bn"), "resnet20-cifar10"), tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("not evaluated: the data is not here (")


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize(
    "prune_spec, quant, recovery",
    [
        (*STRUCTURED_INT8, "none"),
        (*STRUCTURED_INT8, "bn"),
        (*UNSTRUCTURED_4BIT, "reconstruct"),
        (*STRUCTURED_INT8, "reconstruct"),  # option-A shortcuts as ChannelScatter, re-fitted, then int8
    ],
    ids=["none", "bn", "reconstruct", "reconstruct-structured-int8"],
)
def test_a_resnet20_file_scores_what_its_card_says(benches, tmp_path, prune_spec, quant, recovery):
    _same_as_the_card(_bench(benches, "resnet20-cifar10"), Recipe(prune_spec, quant, recovery=recovery), tmp_path)
