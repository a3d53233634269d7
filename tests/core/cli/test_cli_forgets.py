"""``evaluate --json`` says what the compressed model forgets: flips, per-class change, KL, confusion diff and the
(capped) flipped images, beside every key it had."""

import json

from compress_core.bench.forgets import FLIPPED_MAX
from compress_core.cli.evaluate import CONTRACT_KEYS
from tests.core.cli.test_cli import run_cli


def test_evaluate_json_carries_the_forgets_keys():
    p = run_cli(
        "evaluate", "--model", "lenet5-mnist", "--kind", "unstructured", "--sparsity", "0.9", "--bits", "2",
        "--eval", "quick", "--no-latency", "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(CONTRACT_KEYS) <= set(out)
    flips = out["flips"]
    assert flips["right_to_wrong"] > 0 and flips["right_to_wrong_rate"] == flips["right_to_wrong"] / 1000
    assert flips["right_to_wrong"] - flips["wrong_to_right"] == round((out["dense_accuracy"] - out["accuracy"]) * 1000)
    assert flips["flipped_total"] == flips["right_to_wrong"] + flips["wrong_to_right"]
    assert len(out["flipped"]) == min(FLIPPED_MAX, flips["flipped_total"]) and out["flipped"][0]["kind"]
    assert [c["class"] for c in out["per_class"]] == list(range(10)) and out["mean_kl"] > 0
    assert len(out["confusion_diff"]) == 10 and all(sum(row) == 0 for row in out["confusion_diff"])
    assert 0 < out["agreement"] < 1
