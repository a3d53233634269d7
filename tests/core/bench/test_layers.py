"""Per-layer tables, weight histograms and size breakdowns over tiny models with known weights."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from compress_core.base.recipe import Recipe
from compress_core.bench import layers as inspect
from compress_core.bench.workbench import Compressed


@pytest.fixture
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def _zero_first(model: nn.Module, layer: str, n: int) -> nn.Module:
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        dict(pruned.named_modules())[layer].weight.view(-1)[:n] = 0
    return pruned


def test_layer_table_counts_weights_nonzeros_and_sparsity(tiny):
    pruned = _zero_first(tiny, "0", 9)  # 9 of the conv's 36 weights
    table = inspect.layer_table(pruned, dense=tiny)
    assert list(table.columns) == inspect.LAYER_COLUMNS
    conv, fc = table.iloc[0], table.iloc[1]
    assert (conv["layer"], conv["type"], conv["shape"], conv["params"]) == ("0", "Conv2d 3×3", "4×1×3×3", 36)
    assert conv["nonzero"] == 27 and conv["sparsity"] == pytest.approx(0.25)
    assert (fc["type"], fc["shape"], fc["params"], fc["sparsity"]) == ("Linear", "10×144", 1440, 0.0)


def test_layer_table_counts_removed_channels_as_pruned(tiny):
    shrunk = copy.deepcopy(tiny)
    shrunk[0] = nn.Conv2d(1, 2, 3)  # half the filters physically removed
    table = inspect.layer_table(shrunk, dense=tiny).set_index("layer")
    assert table.loc["0", "shape"] == "2×1×3×3" and table.loc["0", "dense_shape"] == "4×1×3×3"
    assert table.loc["0", "sparsity"] == pytest.approx(0.5)


def test_inspect_accepts_a_compressed_result_and_rejects_other_things(tiny):
    comp = Compressed(model=tiny, float_model=_zero_first(tiny, "3", 144), recipe=Recipe())
    assert inspect.layer_table(comp).set_index("layer").loc["3", "nonzero"] == 1440 - 144
    with pytest.raises(ValueError, match="nn.Module or a Compressed"):
        inspect.layer_table("not a model")


def test_weight_histogram_shares_bins_and_leaves_zeros_out(tiny):
    pruned = _zero_first(tiny, "3", 700)
    hist = inspect.weight_histogram(tiny, pruned, bins=20)
    assert list(hist.columns) == inspect.HISTOGRAM_COLUMNS
    before, after = hist[hist["model"] == "before"], hist[hist["model"] == "after"]
    assert before["bin_left"].tolist() == after["bin_left"].tolist() and len(before) == 20
    assert before["count"].sum() == 36 + 1440
    assert after["count"].sum() == 36 + 1440 - 700
    assert inspect.zero_counts(tiny, pruned) == {"before": 0, "after": 700}
    with_zeros = inspect.weight_histogram(tiny, pruned, bins=20, drop_zeros=False)
    assert with_zeros[with_zeros["model"] == "after"]["count"].sum() == 36 + 1440


def test_weight_histogram_of_one_layer_and_bad_input(tiny):
    conv_only = inspect.weight_histogram(tiny, tiny, layer="0", bins=5)
    assert conv_only[conv_only["model"] == "before"]["count"].sum() == 36
    with pytest.raises(ValueError, match="no Conv2d/Linear layer named 'nope'"):
        inspect.weight_histogram(tiny, tiny, layer="nope")
    with pytest.raises(ValueError, match="bins must be >= 1"):
        inspect.weight_histogram(tiny, tiny, bins=0)


def test_masking_does_not_shrink_the_saved_file(tiny):
    buf = io.BytesIO()
    torch.save(tiny.state_dict(), buf)
    assert inspect.state_dict_size_bytes(tiny) == len(buf.getvalue())
    assert inspect.state_dict_size_bytes(_zero_first(tiny, "3", 1000)) == len(buf.getvalue())


def test_size_breakdown_labels_estimates():
    result = {
        "dense_size_bytes": 1000,
        "size_bytes": 300,
        "params_nonzero": 50,
        "size_method": "zlib-compressed torch.save state_dict (estimate)",
    }
    table = inspect.size_breakdown(result, masked_size_bytes=1000)
    assert table["size_bytes"].tolist() == [1000, 1000, 300, 200]
    assert table["basis"].tolist() == ["measured", "measured", "estimated", "estimated"]
    measured = inspect.size_breakdown({**result, "size_method": "PruneScope artefact file (.psz)"}, 1000)
    assert measured.loc[2, "basis"] == "measured"
