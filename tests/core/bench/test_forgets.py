"""forgets(): flips, per-class changes with their paired intervals, the confusion difference."""

from __future__ import annotations

import pytest
import torch

from compress_core.bench.forgets import Forgets, forgets, paired_difference_interval, softmax_outputs
from compress_core.data.sets import TensorSet


def one_hot(preds: list[int], classes: int = 3, conf: float = 0.8) -> torch.Tensor:
    p = torch.full((len(preds), classes), (1 - conf) / (classes - 1))
    p[torch.arange(len(preds)), torch.tensor(preds)] = conf
    return p


def test_identical_outputs_forget_nothing() -> None:
    probs = one_hot([0, 1, 2, 2, 1])
    f = forgets(probs, probs.clone(), torch.tensor([0, 1, 2, 0, 1]))
    assert (f.n, f.agreement, f.flips_right_to_wrong, f.flips_wrong_to_right) == (5, 1.0, 0, 0)
    assert f.mean_kl == pytest.approx(0.0, abs=1e-12)
    assert f.flipped == [] and all(v == 0 for row in f.confusion_diff for v in row)
    assert all(c["change_pp"] == 0 and not c["significant"] for c in f.per_class)
    assert all(c["ci_low_pp"] <= 0 <= c["ci_high_pp"] for c in f.per_class)


def test_flips_counts_confusion_and_gallery() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    dense = one_hot([0, 0, 1, 2, 2, 0], conf=0.9)  # wrong on images 3 and 5
    comp = one_hot([0, 1, 1, 1, 0, 1], conf=0.6)  # 1: right→wrong, 3: wrong→right, 4: right→wrong, 5: wrong→wrong
    f = forgets(dense, comp, labels)
    assert (f.flips_right_to_wrong, f.flips_wrong_to_right) == (2, 1)
    assert f.agreement == pytest.approx(2 / 6)
    assert f.flips_right_to_wrong_rate == pytest.approx(2 / 6)
    kinds = {x["index"]: x["kind"] for x in f.flipped}
    assert kinds == {1: "right_to_wrong", 3: "wrong_to_right", 4: "right_to_wrong", 5: "wrong_to_wrong"}
    assert [x["kind"] for x in f.flipped][:2] == ["right_to_wrong", "right_to_wrong"]
    first = next(x for x in f.flipped if x["index"] == 1)
    assert (first["label"], first["dense_label"], first["label_compressed"]) == (0, 0, 1)
    assert first["dense_confidence"] == pytest.approx(0.9) and first["confidence"] == pytest.approx(0.6)
    # compressed − dense confusion: rows true class, columns predicted class; every row sums to zero
    assert f.confusion_diff == [[-1, 1, 0], [0, 1, -1], [0, 1, -1]]
    c0, c1, c2 = f.per_class
    assert (c0["n"], c0["dense_accuracy"], c0["accuracy"], c0["change_pp"]) == (2, 1.0, 0.5, -50.0)
    assert c1["change_pp"] == 50.0 and c2["change_pp"] == -50.0
    overall = 100 * (3 / 6 - 4 / 6)
    assert c0["change_vs_overall_pp"] == pytest.approx(-50.0 - overall)
    assert f.mean_kl > 0


def test_kl_is_dense_to_compressed() -> None:
    dense, comp = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.9, 0.1]])
    f = forgets(dense, comp, torch.tensor([0]))
    assert f.mean_kl == pytest.approx(0.5 * (torch.log(torch.tensor(0.5 / 0.9)) + torch.log(torch.tensor(5.0))).item())


def test_a_few_flips_among_a_hundred_are_not_damage_but_many_are() -> None:
    lo, hi = paired_difference_interval(a=88, b=3, c=1, d=8)  # −2 pp on 100 images
    assert lo < 0 < hi
    lo, hi = paired_difference_interval(a=70, b=20, c=0, d=10)  # −20 pp
    assert hi < 0 and lo < -0.2 < hi
    lo, hi = paired_difference_interval(a=95, b=0, c=0, d=5)  # nothing flipped
    assert lo <= 0 <= hi


def test_interval_brackets_the_difference_and_approaches_wald_on_many_images() -> None:
    lo, hi = paired_difference_interval(a=12, b=2, c=9, d=4)
    assert lo < 7 / 27 < hi
    a, b, c, d = 8000, 300, 100, 1600  # n = 10,000: the score interval is close to the paired Wald one
    n, diff = 10_000, (100 - 300) / 10_000
    se = ((b + c) / n - diff**2) ** 0.5 / n**0.5
    lo, hi = paired_difference_interval(a, b, c, d)
    assert lo == pytest.approx(diff - 1.96 * se, abs=5e-4) and hi == pytest.approx(diff + 1.96 * se, abs=5e-4)


def test_round_trip_and_shape_check() -> None:
    probs = one_hot([0, 1, 2])
    f = forgets(probs, one_hot([1, 1, 2]), torch.tensor([0, 1, 2]))
    assert Forgets.from_dict(f.to_dict()) == f
    with pytest.raises(ValueError, match="N×C"):
        forgets(probs, probs[:2], torch.tensor([0, 1, 2]))


def test_softmax_outputs_sum_to_one() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    data = TensorSet("t", torch.randn(250, 1, 2, 2), torch.zeros(250, dtype=torch.long))
    p = softmax_outputs(model, data)
    assert p.shape == (250, 3) and torch.allclose(p.sum(1), torch.ones(250))


def test_softmax_outputs_of_a_conv_net_match_a_plain_forward_and_report_each_batch() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5)).eval()
    data = TensorSet("t", torch.randn(230, 1, 6, 6), torch.zeros(230, dtype=torch.long))
    heard: list[tuple[int, int]] = []
    p = softmax_outputs(model, data, progress=lambda done, total: heard.append((done, total)))
    with torch.no_grad():
        assert torch.allclose(p, torch.softmax(model(data.x), 1), atol=1e-6)
    assert heard[-1] == (3, 3) and len(heard) == 3
    assert next(model.parameters()).is_contiguous()  # the given model is never converted to channels_last
