"""Uploads of ``torch.nn.utils.prune`` checkpoints (issue 15): the state_dict of a model pruned the way
the PyTorch tutorial does it (``weight_orig`` and ``weight_mask`` instead of ``weight``) is folded as
``prune.remove`` would, matched to its architecture, reported as pruned, and evaluates exactly like the
model after ``prune.remove``; masks of the wrong shape or not 0/1 are refused with a specific message."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn
from torch.nn.utils import prune

from compress_core.base.recipe import Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.files.uploads import UploadError, load_upload, prunable, upload_spec
from compress_core.models import load
from tests.conftest import ROOT

METHODS = ("l1_unstructured", "random_unstructured", "global_unstructured", "ln_structured")


def _prune_(model: nn.Module, method: str) -> nn.Module:
    """Every Conv2d/Linear pruned 50 % with ``method``, the masks left attached (as after training)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    torch.manual_seed(0)
    if method == "global_unstructured":
        prune.global_unstructured([(m, "weight") for m in layers], pruning_method=prune.L1Unstructured, amount=0.5)
    for m in layers:
        if method == "l1_unstructured":
            prune.l1_unstructured(m, "weight", amount=0.5)
        elif method == "random_unstructured":
            prune.random_unstructured(m, "weight", amount=0.5)
        elif method == "ln_structured":
            prune.ln_structured(m, "weight", amount=0.5, n=2, dim=0)
    return model


def _saved_and_removed(pruned: nn.Module) -> tuple[dict[str, torch.Tensor], nn.Module]:
    """(the state_dict a user saves, with ``weight_orig``/``weight_mask``; the same model after
    ``prune.remove``, which changes it in place). A pruned module cannot be deep-copied."""
    state = {k: v.detach().clone() for k, v in pruned.state_dict().items()}
    for m in pruned.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and prune.is_pruned(m):
            hooks = [h for h in m._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
            for name in [h._tensor_name for h in hooks]:
                prune.remove(m, name)
    return state, pruned


def _torch_save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _accuracy(model_id: str, model: nn.Module, spec=None) -> float:
    return Workbench(model_id, model=model, spec=spec).evaluate(Recipe(), MeasureSettings(latency=False)).accuracy


def _check_upload(model_id: str, method: str, fmt: str = "pt") -> None:
    state, reference = _saved_and_removed(_prune_(load(model_id), method))
    assert any(k.endswith("weight_orig") for k in state) and any(k.endswith("weight_mask") for k in state)
    raw = st_save(state) if fmt == "safetensors" else _torch_save(state)
    u = load_upload(raw, f"pruned.{fmt}")

    assert (u.kind, u.arch) == ("state_dict", model_id) and prunable(u)
    assert any("architecture" in n and "detected" in n for n in u.notes)
    [note] = [n for n in u.notes if "torch.nn.utils.prune" in n]
    assert "masks folded" in note.replace("mask(s) folded", "masks folded") and "sparsity per layer" in note
    ref_state = reference.state_dict()
    want = {k: float((ref_state[k.removesuffix("_orig")] == 0).float().mean()) for k in state if k.endswith("_orig")}
    assert u.prune_sparsity == pytest.approx({k.removesuffix("_orig"): v for k, v in want.items()})
    got_state = u.model.state_dict()
    assert set(got_state) == set(ref_state) and all(torch.equal(got_state[k], ref_state[k]) for k in ref_state)

    spec = upload_spec(u, f"upload-{method}")
    assert _accuracy(spec.id, u.model, spec) == _accuracy(model_id, reference)


@pytest.mark.parametrize("method", METHODS)
def test_a_tutorial_pruned_lenet5_state_dict_uploads_and_scores_like_prune_remove(method):
    _check_upload("lenet5-mnist", method)


def test_the_same_checkpoint_as_safetensors():
    _check_upload("lenet5-mnist", "l1_unstructured", fmt="safetensors")


@pytest.mark.data
@pytest.mark.slow  # two ResNet-20 evaluations per method: ~25-35 s each on the shared 2-core machine
@pytest.mark.parametrize("method", METHODS)
def test_a_tutorial_pruned_resnet20_state_dict_uploads_and_scores_like_prune_remove(method):
    _check_upload("resnet20-cifar10", method)


def test_the_sparsity_note_reports_each_layer():
    u = load_upload(_torch_save(_prune_(load("lenet5-mnist"), "l1_unstructured").state_dict()), "p.pt")
    [note] = [n for n in u.notes if "torch.nn.utils.prune" in n]
    assert "5 mask(s) folded" in note and "prune.remove" in note
    for layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        assert f"{layer} 50.0%" in note
    assert set(u.prune_sparsity) == {f"{n}.weight" for n in ("conv1", "conv2", "fc1", "fc2", "fc3")}


def test_a_bias_pruned_too_is_folded():
    model = load("lenet5-mnist")
    prune.l1_unstructured(model.fc1, "bias", amount=0.25)
    state, reference = _saved_and_removed(model)
    u = load_upload(_torch_save(state), "p.pt")
    assert u.prune_sparsity == {"fc1.bias": 0.25}  # 30 of 120
    assert torch.equal(u.model.fc1.bias, reference.fc1.bias)


# -- refusals ----------------------------------------------------------------------------------------
def _pruned_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _prune_(load("lenet5-mnist"), "l1_unstructured").state_dict().items()}


def test_a_mask_of_the_wrong_shape_is_refused():
    state = _pruned_state()
    state["conv2.weight_mask"] = torch.ones(16, 6, 3, 3)
    with pytest.raises(
        UploadError,
        match=r"mask conv2.weight_mask has shape \(16, 6, 3, 3\) but "
        r"conv2.weight_orig has shape \(16, 6, 5, 5\)",
    ):
        load_upload(_torch_save(state), "p.pt")


@pytest.mark.parametrize("value, shown", [(0.5, "0.5"), (2.0, "2"), (-1.0, "-1")])
def test_a_mask_that_is_not_zero_one_is_refused(value, shown):
    state = _pruned_state()
    state["fc1.weight_mask"].view(-1)[7] = value
    with pytest.raises(UploadError, match=rf"mask fc1.weight_mask holds values other than 0 and 1 \(e.g. {shown}\)"):
        load_upload(_torch_save(state), "p.pt")


def test_half_a_pruned_tensor_is_refused():
    state = _pruned_state()
    del state["fc2.weight_orig"]
    with pytest.raises(UploadError, match="holds fc2.weight_mask but not fc2.weight_orig"):
        load_upload(_torch_save(state), "p.pt")


def test_a_pruned_whole_model_is_refused_as_pickled_code_and_told_to_save_the_state_dict():
    raw = _torch_save(_prune_(load("lenet5-mnist"), "l1_unstructured"))
    with pytest.raises(UploadError, match=r"Pickled code is refused") as err:
        load_upload(raw, "whole.pt")
    assert "torch.nn.utils.prune" in str(err.value) and "model.state_dict()" in str(err.value)


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.mark.slow  # two interpreter starts
def test_evaluate_upload_accepts_a_tutorial_pruned_checkpoint(tmp_path):
    state, reference = _saved_and_removed(_prune_(load("lenet5-mnist"), "l1_unstructured"))
    path = tmp_path / "lenet5_pruned.pt"
    torch.save(state, path)  # what the user did: torch.save(model.state_dict()) with the masks attached
    plain = tmp_path / "lenet5_removed.pt"
    torch.save(reference.state_dict(), plain)
    outs = []
    for p in (path, plain):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "compress_core",
                "--threads",
                "1",
                "evaluate",
                "--upload",
                str(p),
                "--json",
                "--no-latency",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ},
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        outs.append(json.loads(run.stdout))
    assert outs[0]["accuracy"] == outs[1]["accuracy"]
    assert outs[0]["params_nonzero"] == outs[1]["params_nonzero"] < outs[0]["params_total"]
