"""``evaluate --json`` carries the headline every page shows, beside every key it had."""

import json

import pytest

from compress_core.cli.evaluate import CONTRACT_KEYS
from compress_core.cli.main import main
from compress_core.present.headline import headline


def test_evaluate_json_has_the_headline_and_keeps_every_key(capsys):
    args = ["evaluate", "--model", "lenet5-mnist", "--kind", "structured", "--sparsity", "0.5"]
    code = main([*args, "--latency-budget", "0.05", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(CONTRACT_KEYS) <= set(out) and "speedup" in out
    h = out["headline"]
    assert h == json.loads(json.dumps(headline({k: v for k, v in out.items() if k != "headline"}).to_dict()))
    assert h["runtime"] == "torch" and h["runtime_label"] == "PyTorch eager"
    assert h["threads"] == out["latency_threads"] and h["batch"] == out["latency_batch"] == 1
    assert h["latency_ms"] == out["latency_ms_p50"] and h["dense_latency_ms"] == out["dense_latency_ms_p50"]
    # the speed-up is that of the two medians it is printed with, not the paired fastest-call ratio
    assert h["speedup"] == pytest.approx(out["dense_latency_ms_p50"] / out["latency_ms_p50"])
    assert h["noisy"] == bool(out["latency_noisy"])
    assert (h["accuracy"], h["params_nonzero"], h["file_bytes"]) == (
        out["accuracy"],
        out["params_nonzero"],
        out["size_bytes"],
    )
