"""Pure plotly figures: right traces from tidy frames, honest labels, clear errors on bad frames."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from compress_core.present import plots


@pytest.fixture
def curve() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sparsity": [0.5, 0.0, 0.9],
            "accuracy": [0.97, 0.98, 0.6],
            "accuracy_ci_low": [0.96, 0.97, 0.55],
            "accuracy_ci_high": [0.98, 0.99, 0.65],
        }
    )


def test_accuracy_curve_is_sorted_marks_the_current_point_and_the_dense_line(curve):
    fig = plots.accuracy_curve(curve, current_sparsity=0.5, dense_accuracy=0.98)
    assert fig.layout.legend.y < 0, "the legend sits under the plot, never over its (long) title"
    line = next(t for t in fig.data if t.name == "accuracy")
    assert list(line.x) == [0, 50, 90]
    current = next(t for t in fig.data if t.name == "current")
    assert list(current.x) == [50] and list(current.y) == [97]
    assert fig.layout.shapes[0].y0 == 98
    fig.to_json()  # serialisable as the dashboard sends it


def test_accuracy_curve_without_the_current_point_has_no_marker(curve):
    fig = plots.accuracy_curve(curve, current_sparsity=0.3)
    assert [t.name for t in fig.data] == ["95 % CI", "accuracy"]


def test_size_breakdown_hatches_and_names_estimates():
    df = pd.DataFrame(
        {
            "item": ["Dense", "Compressed"],
            "size_bytes": [1000, 100],
            "basis": ["measured", "estimated"],
            "note": ["", "zlib"],
        }
    )
    bar = plots.size_breakdown(df).data[0]
    assert "Compressed (estimated)" in bar.y and "Dense" in bar.y
    assert list(bar.marker.pattern.shape) == ["/", ""]


def test_latency_macs_draws_two_panels():
    df = pd.DataFrame(
        {
            "variant": ["dense", "this"],
            "latency_ms_p50": [2.0, 1.0],
            "latency_ms_iqr": [0.1, None],
            "macs": [100, 50],
            "kernels": ["fp32", "int8-x86-static"],
        }
    )
    fig = plots.latency_macs(df)
    assert [t.xaxis for t in fig.data] == ["x", "x2"]
    assert list(fig.data[0].error_y.array) == [0.05, 0.0]


def test_layer_sparsity_and_histogram_figures():
    layers = pd.DataFrame(
        {
            "layer": ["a", "b"],
            "type": ["Linear", "Linear"],
            "sparsity": [0.5, 0.0],
            "nonzero": [5, 10],
            "dense_params": [10, 10],
        }
    )
    assert list(plots.layer_sparsity(layers).data[0].y) == [50, 0]
    hist = pd.DataFrame(
        {
            "model": ["before", "after"],
            "bin_center": [0.0, 0.0],
            "bin_left": [-1.0, -1.0],
            "bin_right": [1.0, 1.0],
            "count": [3, 1],
        }
    )
    assert [t.name for t in plots.weight_histogram(hist).data] == ["before", "after"]


def test_sensitivity_heatmap_keeps_layer_order():
    df = pd.DataFrame(
        {"layer": ["z", "z", "a", "a"], "sparsity": [0.5, 0.9] * 2, "accuracy_drop": [0.0, 0.1, 0.02, 0.3]}
    )
    heat = plots.sensitivity_heatmap(df).data[0]
    assert list(heat.y) == ["z", "a"] and list(heat.x) == ["50 %", "90 %"]
    assert heat.z[1][1] == pytest.approx(30)


def test_tradeoff_scatter_maps_points_to_rows_and_draws_the_front():
    df = pd.DataFrame(
        {
            "size_bytes": [100, 50, 80],
            "accuracy": [0.9, 0.8, 0.7],
            "kind": ["none", "unstructured", "unstructured"],
            "label": ["a", "b", "c"],
            "pareto": [True, True, False],
        },
        index=[7, 8, 9],
    )
    fig = plots.tradeoff_scatter(df)
    points = {t.name: list(t.customdata) for t in fig.data if t.mode == "markers"}
    assert points == {"no pruning": [7], "unstructured": [8, 9]}
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [50, 100]
    assert all(t.name != "Pareto front" for t in plots.tradeoff_scatter(df.drop(columns="pareto")).data)


@pytest.mark.parametrize(
    ("sizes", "labels"),
    [
        ([114_092, 220_408], ["100 kB", "150 kB", "200 kB"]),  # plotly's own log ticks showed a lone "2" here
        ([1_000, 5_000_000], ["1 kB", "10 kB", "100 kB", "1 MB"]),
    ],
)
def test_the_file_size_axis_labels_its_ticks_in_bytes(sizes, labels):
    df = pd.DataFrame(
        {"size_bytes": sizes, "accuracy": [0.9, 0.8], "kind": ["none", "unstructured"], "label": ["a", "b"]}
    )
    for fig in (plots.tradeoff_scatter(df), plots.budget_chart(df.assign(series="uniform grid"))):
        axis = fig.layout.xaxis
        assert axis.type == "log" and list(axis.ticktext) == labels
        assert 10 ** axis.range[0] < min(sizes) and 10 ** axis.range[1] > max(sizes)


def test_compare_bars_has_one_panel_per_metric_and_names_each_pin_in_the_legend():
    df = pd.DataFrame(
        {
            "pin": ["#1 a", "#2 b"] * 2,
            "metric": ["accuracy", "accuracy", "latency", "latency"],
            "value": [98, 90, 1.0, 0.5],
            "unit": ["%", "%", "ms", "ms"],
        }
    )
    fig = plots.compare_bars(df)
    assert sorted({t.xaxis for t in fig.data}) == ["x", "x2"]
    assert [a.text for a in fig.layout.annotations] == ["accuracy (%)", "latency (ms)"]
    assert [t.name for t in fig.data if t.showlegend] == ["#1 a", "#2 b"]
    assert "pin #" not in fig.to_json()


def test_compare_bars_takes_the_same_recipe_pinned_on_two_models():
    """The Compare crash: two pins with one recipe label ("dense fp32") on two models."""
    df = pd.DataFrame(
        {
            "pin": ["#1 LeNet-5 · dense fp32", "#2 ResNet-20 · dense fp32"] * 2,
            "label": ["dense fp32"] * 4,
            "metric": ["accuracy"] * 2 + ["latency"] * 2,
            "value": [98.3, 92.4, 0.23, float("nan")],
            "unit": ["%", "%", "ms", "ms"],
        }
    )
    fig = plots.compare_bars(df)
    bars = {(t.name, t.xaxis): t.y[0] for t in fig.data}
    assert bars[("#2 ResNet-20 · dense fp32", "x")] == 92.4
    assert bars[("#2 ResNet-20 · dense fp32", "x2")] is None  # not measured: no bar, no crash
    fig.to_json()


def test_the_current_marker_shows_the_cards_accuracy_even_off_the_curve(curve):
    """Fine-tuned recipes are not on the one-shot curve: the marker sits at the card's number."""
    fig = plots.accuracy_curve(
        curve,
        current_sparsity=0.5,
        dense_accuracy=0.98,
        current={
            "accuracy": 0.395,
            "accuracy_ci_low": 0.365,
            "accuracy_ci_high": 0.426,
            "label": "current (fine-tuned)",
        },
    )
    marker = next(t for t in fig.data if t.name == "current (fine-tuned)")
    assert list(marker.x) == [50] and list(marker.y) == [pytest.approx(39.5)]
    assert marker.error_y.array[0] == pytest.approx(3.1) and marker.error_y.arrayminus[0] == pytest.approx(3.0)


def test_layer_sparsity_labels_at_most_a_readable_number_of_layers():
    names = [f"layer{i // 18 + 1}.{i % 18 // 2}.conv{i % 2 + 1}" for i in range(55)]
    layers = pd.DataFrame(
        {
            "layer": names,
            "type": ["Conv2d 3×3"] * 55,
            "sparsity": [0.5] * 55,
            "nonzero": [5] * 55,
            "dense_params": [10] * 55,
        }
    )
    fig = plots.layer_sparsity(layers)
    assert len(fig.data[0].x) == 55 and len(fig.layout.xaxis.tickvals) <= plots.MAX_TICK_LABELS
    few = plots.layer_sparsity(layers.head(5))
    assert list(few.layout.xaxis.tickvals) == names[:5]


def test_latency_scatter_starts_at_zero_when_every_point_shares_the_dense_latency():
    df = pd.DataFrame(
        {
            "latency_ms_p50": [0.233] * 3,
            "accuracy": [0.98, 0.97, 0.9],
            "kind": ["none", "unstructured", "unstructured"],
            "label": ["a", "b", "c"],
        }
    )
    fig = plots.tradeoff_scatter(df, x="latency_ms_p50")
    low, high = fig.layout.xaxis.range
    assert low == 0 and high == pytest.approx(0.233 * 1.15)
    assert {t.name for t in fig.data} == {"no pruning", "unstructured"}
    hover = next(t for t in fig.data if t.name == "unstructured").text
    assert hover[0] == "b<br>latency 0.233 ms<br>top-1 97.00%"


def test_chance_level_points_are_drawn_apart_and_never_on_the_front():
    df = pd.DataFrame(
        {
            "size_bytes": [1000, 100, 50],
            "accuracy": [0.9, 0.8, 0.1],
            "label": ["a", "b", "c"],
            "kind": ["none", "structured", "structured"],
            "pareto": [True, True, True],
            "chance": [False, False, True],
        }
    )
    fig = plots.tradeoff_scatter(df)
    hollow = next(t for t in fig.data if t.name.startswith("at chance level"))
    assert list(hollow.customdata) == [2]
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [100, 1000]
    assert "file size 1.0 kB" in next(t for t in fig.data if t.name == "no pruning").text[0]


def test_missing_columns_raise_a_clear_error():
    with pytest.raises(ValueError, match="accuracy_curve needs column"):
        plots.accuracy_curve(pd.DataFrame({"sparsity": [0.1]}))


@pytest.mark.parametrize(("n", "text"), [(512, "512 B"), (2_500, "2.5 kB"), (3_400_000, "3.4 MB")])
def test_human_bytes(n, text):
    assert plots.human_bytes(n) == text


def test_plots_and_inspect_never_import_streamlit():
    code = "import sys, compress_core.present.plots, compress_core.bench.layers; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=plots.__file__.rsplit("/compress_core", 1)[0])


def test_confusion_change_is_a_diverging_heatmap_in_class_order_with_blank_zeros():
    classes = ["cat", "dog", "ship"]
    cells = {("cat", "cat"): -3, ("cat", "dog"): 3, ("dog", "dog"): 1, ("dog", "cat"): -1}
    df = pd.DataFrame([{"true": t, "predicted": p, "change": cells.get((t, p), 0)} for t in classes for p in classes])
    fig = plots.confusion_change(df)
    heat = fig.data[0]
    assert list(heat.x) == classes and list(heat.y) == classes
    assert [list(r) for r in heat.z] == [[-3, 3, 0], [-1, 1, 0], [0, 0, 0]]
    assert heat.zmid == 0 and heat.zmin == -3 and heat.zmax == 3
    assert list(heat.text[0]) == ["-3", "+3", ""] and list(heat.text[2]) == ["", "", ""]
    assert fig.layout.yaxis.autorange == "reversed"  # the first class on top, like a printed matrix
    fig.to_json()


def test_confusion_change_of_nothing_changed_and_a_bad_frame():
    df = pd.DataFrame([{"true": a, "predicted": b, "change": 0} for a in "01" for b in "01"])
    fig = plots.confusion_change(df)
    assert fig.data[0].zmax == 1 and fig.data[0].zmin == -1  # a valid scale around zero even with no change
    with pytest.raises(ValueError, match="change"):
        plots.confusion_change(df.drop(columns="change"))


def test_class_change_marks_only_the_classes_outside_noise():
    df = pd.DataFrame(
        {
            "class": ["cat", "dog"],
            "change_pp": [-20.0, -2.0],
            "ci_low_pp": [-30.0, -8.0],
            "ci_high_pp": [-11.0, 3.0],
            "significant": [True, False],
        }
    )
    fig = plots.class_change(df)
    bar = fig.data[0]
    assert list(bar.y) == ["cat", "dog"] and list(bar.x) == [-20.0, -2.0]
    assert list(bar.error_x.array) == [9.0, 5.0] and list(bar.error_x.arrayminus) == [10.0, 6.0]
    assert bar.marker.color[0] != bar.marker.color[1]
    fig.to_json()
