"""``evaluate --runtime`` / ``--save-deploy`` / ``--round-to``: the recipe measured on a runtime's session, its
deployable file written, the JSON keys every row has, and one clear line for bad input. LeNet-5 only."""

from __future__ import annotations

import json

import pytest

from compress_core.cli.main import build_parser, main
from compress_core.deploy.runtimes import RUNTIMES, get_runtime

BASE = [
    "evaluate",
    "--model",
    "lenet5-mnist",
    "--kind",
    "structured",
    "--sparsity",
    "0.5",
    "--json",
    "--latency-budget",
    "0.05",
]


def _needs(key: str) -> None:
    reason = get_runtime(key).available()
    if reason is not None:
        pytest.skip(reason)


def _run(args: list[str], capsys) -> dict:
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)  # exactly one JSON object on stdout


def test_the_runtime_flag_offers_every_registered_runtime():
    action = next(
        a for a in build_parser()._subparsers._group_actions[0].choices["evaluate"]._actions if a.dest == "runtime"
    )
    assert tuple(action.choices) == tuple(RUNTIMES)


def test_evaluate_on_onnxruntime_measures_there_and_writes_the_file(capsys, tmp_path):
    _needs("onnxruntime")
    args = list(BASE)
    plain = _run(args, capsys)
    assert plain["runtime"] == "torch" and plain["deploy_file_bytes"] is None  # default: today's measurement
    target = tmp_path / "lenet.onnx"
    out = _run([*args, "--runtime", "onnxruntime", "--save-deploy", str(target)], capsys)
    assert out["runtime"] == "onnxruntime" and "onnxruntime" in out["latency_kernels"]
    assert out["deploy_file_bytes"] == target.stat().st_size > 0
    assert out["speedup"] > 0 and out["speedup_vs_eager"] > 0 and out["eager_latency_ms_p50"] > 0
    assert out["accuracy"] == pytest.approx(plain["accuracy"], abs=0.002)  # fp32: the same predictions
    assert out["params_total"] == plain["params_total"] and out["macs"] == plain["macs"]
    assert out["seconds"]["deploy_s"] > 0 and any("measured on onnxruntime" in n for n in out["simulated"])
    loaded = get_runtime("onnxruntime").load(target, (1, 28, 28))
    assert loaded.file_bytes == out["deploy_file_bytes"]


def test_an_explicit_torch_runtime_reports_its_deployable_file(capsys, tmp_path):
    args = list(BASE)
    out = _run([*args, "--runtime", "torch", "--round-to", "4", "--save-deploy", str(tmp_path / "m")], capsys)
    assert out["runtime"] == "torch" and out["recipe"]["prune"]["round_to"] == 4
    assert out["deploy_file_bytes"] == (tmp_path / "m.pt2").stat().st_size
    assert out["speedup_vs_eager"] == out["speedup"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "--runtime", "tensorrt"], "invalid choice: 'tensorrt'"),
        (["evaluate", "--artifact", "x.psz", "--runtime", "onnxruntime"], "do not go with --artifact"),
        (["evaluate", "--kind", "structured", "--sparsity", "0.5", "--round-to", "3"], "invalid choice: 3"),
        (["evaluate", "--kind", "unstructured", "--sparsity", "0.5", "--round-to", "8"], "needs structured pruning"),
        (
            ["evaluate", "--kind", "structured", "--sparsity", "0.5", "--save-deploy", "/no/such/dir/m"],
            "cannot write the deployable file",
        ),
    ],
)
def test_bad_runtime_input_is_one_clear_line(args, message, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
