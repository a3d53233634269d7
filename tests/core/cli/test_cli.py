"""The CLI contract (DESIGN.md): stable flags, one JSON object on stdout, one clear error line."""

import json
import os
import subprocess
import sys

import pytest

from compress_core.cli.evaluate import CONTRACT_KEYS
from compress_core.cli.main import main
from tests.conftest import ROOT


def run_cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "compress_core", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def test_evaluate_json_has_every_contract_key():
    p = run_cli(
        "evaluate",
        "--model",
        "lenet5-mnist",
        "--kind",
        "unstructured",
        "--criterion",
        "l1",
        "--scope",
        "global",
        "--sparsity",
        "0.5",
        "--bits",
        "4",
        "--batch",
        "2",
        "--eval",
        "quick",
        "--json",
        "--latency-budget",
        "0.05",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # exactly one JSON object
    assert set(CONTRACT_KEYS) <= set(out)
    assert out["model"] == "lenet5-mnist" and out["latency_batch"] == 2
    assert out["recipe"]["prune"]["sparsity"] == 0.5 and out["recipe"]["quant"]["bits"] == 4
    assert 0.5 <= out["params_nonzero"] / out["params_total"] < 0.75


def test_models_lists_the_zoo():
    p = run_cli("models", "--json")
    assert p.returncode == 0
    ids = [m["id"] for m in json.loads(p.stdout)]
    assert ids[:2] == ["lenet5-mnist", "lenet300-mnist"] and "resnet56-cifar10" in ids


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "--sparsity", "1.5"], "sparsity must be a fraction between 0 and 0.99"),
        (["evaluate", "--bits", "5"], "invalid choice: 5"),
        (["evaluate", "--model", "nope"], "unknown model 'nope'"),
        (["evaluate", "--recipe", "{bad"], "recipe is not valid JSON"),
        (["evaluate", "--int8", "--bits", "4"], "--int8 runs 8-bit kernels"),
        (["evaluate", "--recipe", "@/no/such/file.json"], "cannot read recipe file"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_clear_line_and_no_traceback(args, message, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_data_is_a_clear_error(tmp_path):
    p = run_cli(
        "evaluate",
        "--model",
        "resnet20-cifar10",
        "--json",
        env={"COMPRESS_DATA_DIR": str(tmp_path), "COMPRESS_CACHE_DIR": str(tmp_path / "c"), "PRUNESCOPE_OFFLINE": "1"},
    )
    assert p.returncode == 2 and p.stdout == ""
    assert "resnet20-12fca82f.th is missing" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.data
@pytest.mark.slow
def test_resnet20_full_eval_reports_the_published_dense_accuracy():
    p = run_cli("evaluate", "--model", "resnet20-cifar10", "--eval", "full", "--json", "--no-latency")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["eval_samples"] == 10_000
    assert out["accuracy"] == pytest.approx(0.9173, abs=0.0005)


def test_sweep_fine_tunes_every_pruned_point_and_writes_csv(tmp_path):
    out = tmp_path / "s.csv"
    p = run_cli(
        "sweep",
        "--model",
        "lenet5-mnist",
        "--sparsities",
        "0,0.9",
        "--bits-list",
        "32",
        "--no-store",
        "--latency-budget",
        "0.02",
        "--finetune-epochs",
        "1",
        "--finetune-samples",
        "256",
        "--out",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    import pandas as pd

    df = pd.read_csv(out)
    assert len(df) == 2
    recipes = [json.loads(r) for r in df["recipe_json"]]
    pruned = [r for r in recipes if r["prune"]["kind"] == "unstructured"]
    dense = [r for r in recipes if r["prune"]["kind"] == "none"]
    assert pruned[0]["finetune"]["epochs"] == 1 and pruned[0]["finetune"]["max_samples"] == 256
    assert dense[0]["finetune"] is None, "the dense reference point is not fine-tuned"
