"""CLI: ``evaluate --upload FILE`` measures a user's own model file, and refuses unsafe files in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from compress_core.models import load
from tests.conftest import ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "compress_core", "--threads", "1", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ},
        timeout=300,
    )


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("upload") / "my_lenet.safetensors"
    save_file(load("lenet5-mnist").state_dict(), str(path))
    return str(path)


def test_uploaded_lenet5_state_dict_scores_like_the_zoo_model(lenet_file):
    flags = ("--json", "--no-latency")
    up, zoo = (
        run_cli("evaluate", "--upload", lenet_file, *flags),
        run_cli("evaluate", "--model", "lenet5-mnist", *flags),
    )
    assert up.returncode == 0 and zoo.returncode == 0, up.stderr + zoo.stderr
    up_out, zoo_out = json.loads(up.stdout), json.loads(zoo.stdout)
    assert up_out["model"].startswith("upload-")
    assert up_out["accuracy"] == zoo_out["accuracy"] and up_out["dense_accuracy"] == zoo_out["dense_accuracy"]
    assert up_out["params_total"] == zoo_out["params_total"] == 61_706


def test_uploaded_state_dict_can_be_pruned_with_an_explicit_arch(lenet_file):
    p = run_cli(
        "evaluate", "--upload", lenet_file, "--arch", "lenet5-mnist", "--sparsity", "0.5", "--json", "--no-latency"
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["params_nonzero"] < out["params_total"]


def test_a_pickled_whole_model_is_refused_with_one_line(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(load("lenet5-mnist"), path)  # pickles the class: unpickling it could run code
    p = run_cli("evaluate", "--upload", str(path), "--json")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Pickled code is refused" in lines[0]
    assert "Traceback" not in p.stderr


def test_arch_without_upload_is_a_usage_error():
    p = run_cli("evaluate", "--arch", "lenet5-mnist")
    assert p.returncode == 2 and "--arch and --dataset go with --upload" in p.stderr
