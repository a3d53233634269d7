"""What the compressed model forgets: flips, per-class change, confusion difference and KL against hand-computed
values, and the Workbench's ``Result.forgets`` from the predictions its evaluation already made."""

from __future__ import annotations

import json
import math

import pytest
import torch

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.records import Result
from compress_core.base.settings import MeasureSettings
from compress_core.bench.forgets import (
    CONFUSION_MAX_CLASSES,
    RIGHT_TO_WRONG,
    WRONG_TO_RIGHT,
    Forgets,
    flip_indices,
    forgets,
    paired_change_interval,
)
from compress_core.bench.workbench import Workbench
from compress_core.data.images import ImageFolderSet

HIGH, LOW = [0.8, 0.1, 0.1], [0.6, 0.2, 0.2]  # dense rows: HIGH at their top-1; compressed: LOW, or _moved


def _row(top: int, values: list[float]) -> list[float]:
    """``values`` (its first entry the largest) rolled so that the largest sits at ``top``."""
    return [values[(j - top) % 3] for j in range(3)]


def _moved(dense_top: int, top: int) -> list[float]:
    """A compressed row whose top-1 moved off the dense one: 0.6 at ``top``, 0.2 at ``dense_top`` and the other."""
    return [0.6 if j == top else 0.2 for j in range(3)]


def _hand_set() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    dense_top = [0, 0, 1, 2, 2, 1]  # right at 0, 1, 2, 4
    comp_top = [0, 1, 1, 1, 2, 0]  # right at 0, 2, 3, 4: image 1 right→wrong, image 3 wrong→right
    dense = torch.tensor([_row(t, HIGH) for t in dense_top])
    comp = torch.tensor([_row(c, LOW) if c == d else _moved(d, c) for c, d in zip(comp_top, dense_top, strict=True)])
    assert comp.argmax(1).tolist() == comp_top
    return dense, comp, labels


def test_flips_per_class_confusion_and_kl_match_hand_computed_values():
    dense, comp, labels = _hand_set()
    f = forgets(dense, comp, labels)
    assert (f.n, f.agreement) == (6, 0.5)  # same top-1 at images 0, 2, 4
    assert (f.flips_right_to_wrong, f.flips_wrong_to_right, f.flips) == (1, 1, 2)
    assert f.flip_rate_right_to_wrong == pytest.approx(1 / 6) and f.flip_rate_wrong_to_right == pytest.approx(1 / 6)
    assert f.dense_accuracy == pytest.approx(4 / 6) and f.accuracy == pytest.approx(4 / 6)
    same = 0.8 * math.log(0.8 / 0.6) + 2 * 0.1 * math.log(0.1 / 0.2)  # KL([.8,.1,.1] || [.6,.2,.2])
    moved = 0.8 * math.log(0.8 / 0.2) + 0.1 * math.log(0.1 / 0.6) + 0.1 * math.log(0.1 / 0.2)
    assert f.mean_kl == pytest.approx((3 * same + 3 * moved) / 6, abs=1e-6)
    by = {c["class"]: c for c in f.per_class}
    assert [(by[c]["n"], by[c]["dense_accuracy"], by[c]["accuracy"]) for c in (0, 1, 2)] == [
        (2, 1.0, 0.5),
        (2, 0.5, 1.0),
        (2, 0.5, 0.5),
    ]
    assert [round(by[c]["change_pp"], 9) for c in (0, 1, 2)] == [-50.0, 50.0, 0.0]
    assert [round(by[c]["change_vs_overall_pp"], 9) for c in (0, 1, 2)] == [-50.0, 50.0, 0.0]  # overall change 0
    assert (by[0]["flips_right_to_wrong"], by[1]["flips_wrong_to_right"]) == (1, 1)
    for c in by.values():
        assert c["ci_low_pp"] <= c["change_pp"] <= c["ci_high_pp"]
        assert c["significant"] == (c["ci_high_pp"] < 0 or c["ci_low_pp"] > 0)
    # rows: true class; columns: predicted. dense (0,0)x2 (1,1) (1,2) (2,2) (2,1); compressed (0,0) (0,1) (1,1)x2
    # (2,2) (2,0)
    assert f.confusion_diff == [[-1, 1, 0], [0, 1, -1], [1, -1, 0]]
    assert f.flipped_total == 2
    assert f.flipped == [
        {
            "index": 1,  # the true class's probability fell 0.8 -> 0.2: the larger change first
            "label": 0,
            "dense_label": 0,
            "label_compressed": 1,
            "dense_confidence": pytest.approx(0.8),
            "confidence": pytest.approx(0.6),
            "kind": RIGHT_TO_WRONG,
        },
        {
            "index": 3,  # 0.1 -> 0.6
            "label": 1,
            "dense_label": 2,
            "label_compressed": 1,
            "dense_confidence": pytest.approx(0.8),
            "confidence": pytest.approx(0.6),
            "kind": WRONG_TO_RIGHT,
        },
    ]
    assert flip_indices(f) == ([1], [3])
    assert f.classes_hurt() == []  # two images a class: no interval excludes the overall change


def test_identical_predictions_have_no_flips_and_zero_kl():
    dense, _, labels = _hand_set()
    f = forgets(dense, dense.clone(), labels)
    assert (f.agreement, f.flips_right_to_wrong, f.flips_wrong_to_right, f.mean_kl) == (1.0, 0, 0, 0.0)
    assert f.flipped == [] and f.flipped_total == 0
    assert all(v == 0 for row in f.confusion_diff or [] for v in row)
    assert not any(c["significant"] for c in f.per_class)


def test_flipped_list_is_capped_and_the_total_kept():
    n = 50
    labels = torch.zeros(n, dtype=torch.long)
    dense = torch.tensor([[0.9, 0.1]] * n)
    comp = torch.tensor([[0.1 + i / 1000, 0.9 - i / 1000] for i in range(n)])  # every image right→wrong
    f = forgets(dense, comp, labels, flipped_max=7)
    assert (f.flipped_total, len(f.flipped), f.flipped_max) == (50, 7, 7)
    assert [r["index"] for r in f.flipped] == list(range(7))  # largest drop of the true class first
    assert f.flips_right_to_wrong == 50 and flip_indices(f) == (list(range(50)), [])


def test_a_class_hit_harder_than_the_whole_is_significant():
    labels = torch.tensor([0] * 200 + [1] * 200)
    right = lambda y: [1.0, 0.0] if y == 0 else [0.0, 1.0]  # noqa: E731
    wrong = lambda y: [0.0, 1.0] if y == 0 else [1.0, 0.0]  # noqa: E731
    dense = torch.tensor([right(int(y)) for y in labels])
    comp = torch.tensor([wrong(0) if i < 80 else right(int(y)) for i, y in enumerate(labels)])  # 80 of class 0
    f = forgets(dense, comp, labels)
    by = {c["class"]: c for c in f.per_class}
    assert by[0]["change_pp"] == pytest.approx(-40.0) and by[0]["change_vs_overall_pp"] == pytest.approx(-20.0)
    assert by[0]["significant"] and by[0]["ci_high_pp"] < -20.0
    assert by[1]["significant"] and by[1]["change_vs_overall_pp"] == pytest.approx(20.0)  # spared, relatively
    assert f.classes_hurt() == [0]
    assert f.mean_kl > 0 and math.isfinite(f.mean_kl)  # zero probabilities meet KL_FLOOR, not log(0)


def test_paired_interval_is_newcombe_method_10():
    # Hand-computed from Newcombe (1998), method 10: a=36 both right, b=12 dense only, c=2 compressed only, d=0.
    n, p1, p2 = 50, 48 / 50, 38 / 50
    z = 1.959964

    def wilson(p):
        c, h = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return c - h / (1 + z * z / n), c + h / (1 + z * z / n)

    (l1, u1), (l2, u2) = wilson(p1), wilson(p2)
    phi = (36 * 0 - 12 * 2) / math.sqrt(48 * 2 * 38 * 12)  # negative: no continuity correction
    delta = math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    eps = math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    lo, hi = paired_change_interval(36, 12, 2, 0)
    assert (lo, hi) == (pytest.approx(p2 - p1 - eps), pytest.approx(p2 - p1 + delta))
    assert lo < -0.2 < hi < 0
    assert paired_change_interval(5, 0, 0, 5)[0] < 0 < paired_change_interval(5, 0, 0, 5)[1]


def test_unlabelled_images_give_agreement_and_kl_only():
    dense, comp, _ = _hand_set()
    f = forgets(dense, comp, None)
    assert (f.labelled, f.agreement, f.flips_right_to_wrong, f.flip_rate_wrong_to_right) == (False, 0.5, None, None)
    assert f.per_class == [] and f.flipped == [] and f.confusion_diff is None and f.mean_kl > 0


def test_many_classes_leave_out_the_confusion_matrix():
    c = CONFUSION_MAX_CLASSES + 1
    probs = torch.softmax(torch.randn(20, c, generator=torch.Generator().manual_seed(0)), 1)
    f = forgets(probs, probs.flip(0), torch.arange(20))
    assert f.confusion_diff is None and f.per_class


def test_forgets_round_trips_through_json():
    dense, comp, labels = _hand_set()
    f = forgets(dense, comp, labels)
    assert Forgets.from_dict(json.loads(json.dumps(f.to_dict()))) == f


def test_the_workbench_keeps_forgets_and_every_number_it_had(wb):
    s = MeasureSettings(latency=False)
    dense = wb.evaluate(Recipe(), s)
    assert dense.forgets is not None
    assert (dense.forgets["flips_right_to_wrong"], dense.forgets["flips_wrong_to_right"]) == (0, 0)
    assert dense.forgets["agreement"] == 1.0 and dense.forgets["mean_kl"] == 0.0 and dense.forgets["flipped"] == []
    r = wb.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.9), QuantSpec(2)), s)
    f = Forgets.from_dict(r.forgets or {})
    assert f.n == r.eval_samples and f.accuracy == pytest.approx(r.accuracy)
    assert f.dense_accuracy == pytest.approx(r.dense_accuracy) and f.agreement == pytest.approx(r.agreement)
    assert f.flips_right_to_wrong - f.flips_wrong_to_right == round((r.dense_accuracy - r.accuracy) * f.n)
    assert f.flips_right_to_wrong > 0 and f.mean_kl > 0
    assert sum(c["n"] for c in f.per_class) == f.n
    json.dumps(r.to_dict())  # JSON-able as the store and the CLI write it


def test_a_stored_row_without_forgets_still_loads(wb):
    r = wb.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.5)), MeasureSettings(latency=False))
    old = {k: v for k, v in r.to_dict().items() if k != "forgets"}
    assert Result.from_dict(old).forgets is None
    wb.remember(old, MeasureSettings(mode="full", latency=False))


def test_unlabelled_image_folder_results_carry_agreement_and_kl_only(wb):
    x = wb.eval_data().x[:64]
    folder = ImageFolderSet(name="plain-folder-64", x=x, y=torch.full((64,), -1), labelled=False)
    own = Workbench("lenet5-mnist", eval_override=folder)
    r = own.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.9)), MeasureSettings(latency=False))
    assert r.forgets is not None and r.forgets["labelled"] is False
    assert r.forgets["flips_right_to_wrong"] is None and r.forgets["per_class"] == []
    assert r.forgets["agreement"] == pytest.approx(r.agreement) and r.forgets["mean_kl"] >= 0


@pytest.mark.data
def test_resnet20_dense_recipe_has_no_flips_and_recovery_keeps_them_counted(resnet20):
    s = MeasureSettings(latency=False)
    dense = resnet20.evaluate(Recipe(), s).forgets or {}
    assert (dense["flips_right_to_wrong"], dense["flips_wrong_to_right"], dense["mean_kl"]) == (0, 0, 0.0)
    assert not any(c["significant"] for c in dense["per_class"])
    r = resnet20.evaluate(Recipe(PruneSpec("unstructured", "l1", "global", 0.5)).with_recovery("bn"), s, oneshot=False)
    f = Forgets.from_dict(r.forgets or {})
    assert f.flips_right_to_wrong - f.flips_wrong_to_right == round((r.dense_accuracy - r.accuracy) * f.n)
    assert len(f.per_class) == 10 and f.agreement == pytest.approx(r.agreement)
