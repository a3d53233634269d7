"""Per-layer sensitivity on the bundled LeNet-5: table shape, honest drops, and the shared model untouched."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from compress_core.base.settings import MeasureSettings
from compress_core.study.sensitivity import bit_sensitivity, layer_sensitivity, ratios_from_sensitivity

LAYERS = ["conv1", "conv2", "fc1", "fc2", "fc3"]


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(before: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_layer_sensitivity_prunes_one_layer_at_a_time(wb):
    before = _snapshot(wb.model)
    seen = []
    df = layer_sensitivity(wb, sparsities=(0.5, 0.9), progress=lambda f, msg: seen.append(f))
    _assert_same(before, wb.model)
    assert list(df.columns)[:5] == ["layer", "params", "sparsity", "accuracy", "accuracy_drop"]
    assert len(df) == len(LAYERS) * 2 and list(df["layer"].unique()) == LAYERS
    assert df.loc[df["layer"] == "fc1", "params"].iloc[0] == 120 * 400
    high = df[df["sparsity"] == 0.9]
    assert high["accuracy_drop"].max() > 0.02  # pruning some layer to 90 % visibly costs accuracy
    assert (df["accuracy_drop"] > -0.02).all()  # never much better than dense: drops are honest
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_pruning_a_layer_further_costs_at_least_roughly_as_much(wb):
    df = layer_sensitivity(wb, sparsities=(0.25, 0.9))
    wide = df.pivot(index="layer", columns="sparsity", values="accuracy_drop")
    assert (wide[0.9] >= wide[0.25] - 0.01).all()


def test_layer_sensitivity_rejects_bad_input(wb):
    with pytest.raises(ValueError, match="sensitivity kind"):
        layer_sensitivity(wb, kind="channels")
    with pytest.raises(ValueError, match="sparsity of layer"):
        layer_sensitivity(wb, sparsities=(1.5,))
    with pytest.raises(ValueError, match="criterion"):
        layer_sensitivity(wb, criterion="magic")
    with pytest.raises(ValueError, match="non-empty"):
        layer_sensitivity(wb, sparsities=())
    with pytest.raises(ValueError, match="eval"):
        layer_sensitivity(wb, mode="fast")


def test_structured_sensitivity_covers_every_layer_but_the_logits(wb):
    before = _snapshot(wb.model)
    df = layer_sensitivity(wb, sparsities=(0.5,), kind="structured")
    _assert_same(before, wb.model)
    assert list(df["layer"]) == LAYERS[:-1]


def test_bit_sensitivity_quantizes_one_layer_at_a_time(wb):
    before = _snapshot(wb.model)
    df = bit_sensitivity(wb, bits=(8, 2))
    _assert_same(before, wb.model)
    assert list(df.columns)[:5] == ["layer", "params", "bits", "accuracy", "accuracy_drop"]
    assert len(df) == len(LAYERS) * 2 and list(df["layer"].unique()) == LAYERS
    assert (df.loc[df["bits"] == 8, "accuracy_drop"].abs() <= 0.01).all()  # 8-bit weights are near-lossless
    assert df.loc[df["bits"] == 2, "accuracy_drop"].max() > 0.02


def test_bit_sensitivity_rejects_unknown_bit_widths(wb):
    with pytest.raises(ValueError, match="bits must be one of"):
        bit_sensitivity(wb, bits=(5,))


def test_ratios_pick_the_largest_sparsity_within_the_budget():
    df = pd.DataFrame(
        {
            "layer": ["a"] * 4 + ["b"] * 4 + ["c"] * 2,
            "sparsity": [0.25, 0.5, 0.75, 0.9] * 2 + [0.5, 0.9],
            "accuracy_drop": [
                0.0,
                0.004,
                0.01,
                0.2,  # a: 0.75 sits exactly on the budget
                0.02,
                0.05,
                0.1,
                0.3,  # b: nothing fits
                0.983 - 0.973,
                0.001,
            ],  # c: a float-rounded 0.01 still fits; 0.9 fits too
        }
    )
    assert ratios_from_sensitivity(df, max_drop=0.01) == {"a": 0.75, "b": 0.0, "c": 0.9}
    assert ratios_from_sensitivity(df, max_drop=0.0) == {"a": 0.25, "b": 0.0, "c": 0.0}


def test_ratios_from_a_real_table_are_usable_as_layer_sparsity(wb):
    df = layer_sensitivity(wb, sparsities=(0.5, 0.9))
    ratios = ratios_from_sensitivity(df, max_drop=0.02)
    assert list(ratios) == LAYERS and all(r in (0.0, 0.5, 0.9) for r in ratios.values())
    from compress_core.base.recipe import PruneSpec, Recipe

    recipe = Recipe(prune=PruneSpec(kind="unstructured", scope="layer", skip=(), layer_sparsity=tuple(ratios.items())))
    assert wb.evaluate(recipe, MeasureSettings(latency=False)).accuracy > 0.5


def test_ratios_reject_a_table_without_the_columns():
    with pytest.raises(ValueError, match="accuracy_drop"):
        ratios_from_sensitivity(pd.DataFrame({"layer": ["a"], "sparsity": [0.5]}))
    with pytest.raises(ValueError, match="max_drop"):
        ratios_from_sensitivity(pd.DataFrame({"layer": [], "sparsity": [], "accuracy_drop": []}), max_drop=-1)


def test_estimate_times_one_layer_and_multiplies_and_progress_says_the_time_left(wb):
    from compress_core.study.sensitivity import duration_text, estimate_duration

    est = estimate_duration(wb, "sparsity", sparsities=(0.5, 0.9), recovery="none")
    assert (est.layers, est.values, est.evaluations) == (len(LAYERS), 2, len(LAYERS) * 2)
    assert est.timed_layer == "fc1" and est.seconds_each > 0  # the largest layer, timed for real
    assert est.total_s == pytest.approx(est.seconds_each * est.evaluations)
    assert f"{len(LAYERS)} layers × 2 values = {len(LAYERS) * 2} evaluations" in est.text()
    bits = estimate_duration(wb, "bits", bits=(8, 4, 2))
    assert (bits.layers, bits.values) == (len(LAYERS), 3) and bits.seconds_each > 0
    messages = []
    layer_sensitivity(wb, sparsities=(0.25,), progress=lambda f, msg: messages.append(msg))
    assert "left" not in messages[0]  # nothing done yet: no rate to extrapolate from
    assert all(f"{i}/{len(LAYERS)} done, about " in messages[i] for i in range(1, len(LAYERS)))
    assert [duration_text(s) for s in (8.4, 130, 3900)] == ["8 s", "2 min 10 s", "1 h 05 min"]
    with pytest.raises(ValueError, match="analysis must be"):
        estimate_duration(wb, "channels")
