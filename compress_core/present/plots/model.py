"""What is inside a model: where the bytes go, sparsity per layer, weight values before and after."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from compress_core.present.plots.style import COMPRESSED, DENSE, figure_layout, human_bytes, require_columns


def size_breakdown(df: pd.DataFrame, title: str = "Where the bytes go") -> go.Figure:
    """Columns: item, size_bytes, basis ("measured"/"estimated"), note (see inspect.size_breakdown).
    The first row is the reference (drawn grey); estimated rows are hatched and labelled."""
    require_columns(df, ["item", "size_bytes", "basis", "note"], "size_breakdown")
    d = df.iloc[::-1]
    estimated = d["basis"].eq("estimated").tolist()
    colors = [DENSE if i == len(d) - 1 else COMPRESSED for i in range(len(d))]
    bar = go.Bar(
        y=[f"{item}{' (estimated)' if est else ''}" for item, est in zip(d["item"], estimated, strict=True)],
        x=d["size_bytes"],
        orientation="h",
        marker={"color": colors, "pattern": {"shape": ["/" if e else "" for e in estimated], "solidity": 0.3}},
        text=[human_bytes(v) for v in d["size_bytes"]],
        textposition="auto",
        customdata=d[["note", "basis"]].to_numpy(),
        hovertemplate="%{y}<br>%{x:,} bytes (%{customdata[1]})<br>%{customdata[0]}<extra></extra>",
    )
    return go.Figure([bar], figure_layout(title, xaxis={"title": {"text": "bytes"}}, yaxis={"automargin": True}))


def layer_sparsity(df: pd.DataFrame, title: str = "Sparsity per layer") -> go.Figure:
    """Columns: layer, type, sparsity (fraction), nonzero, dense_params (see inspect.layer_table)."""
    require_columns(df, ["layer", "type", "sparsity", "nonzero", "dense_params"], "layer_sparsity")
    bar = go.Bar(
        x=df["layer"],
        y=df["sparsity"] * 100,
        marker_color=COMPRESSED,
        customdata=df[["type", "nonzero", "dense_params"]].to_numpy(),
        hovertemplate="%{x} (%{customdata[0]})<br>%{y:.1f} % removed<br>"
        "%{customdata[1]:,} of %{customdata[2]:,} weights left<extra></extra>",
    )
    return go.Figure(
        [bar],
        figure_layout(
            title,
            yaxis={"title": {"text": "weights removed (%)"}, "range": [0, 100]},
            xaxis=_thinned_ticks(list(df["layer"])),
        ),
    )


MAX_TICK_LABELS = 24


def _thinned_ticks(names: list[str]) -> dict:
    """Category axis that labels at most ``MAX_TICK_LABELS`` layers (every k-th, evenly), so 55 ResNet-56
    layer names never overlap; every bar still names its layer on hover."""
    step = max(1, -(-len(names) // MAX_TICK_LABELS))
    shown = names[::step]
    return {
        "type": "category",
        "tickangle": -45 if len(shown) > 8 else 0,
        "automargin": True,
        "tickmode": "array",
        "tickvals": shown,
        "ticktext": shown,
        "tickfont": {"size": 10},
    }


def weight_histogram(df: pd.DataFrame, title: str = "Weight values before and after") -> go.Figure:
    """Columns: model ("before"/"after"), bin_center, bin_left, bin_right, count (inspect.weight_histogram)."""
    require_columns(df, ["model", "bin_center", "bin_left", "bin_right", "count"], "weight_histogram")
    traces = []
    for name, color in (("before", DENSE), ("after", COMPRESSED)):
        d = df[df["model"] == name]
        traces.append(
            go.Bar(
                x=d["bin_center"],
                y=d["count"],
                width=(d["bin_right"] - d["bin_left"]).tolist(),
                name=name,
                marker_color=color,
                opacity=0.6,
                hovertemplate=f"{name}: %{{y:,}} weights near %{{x:.3g}}<extra></extra>",
            )
        )
    return go.Figure(
        traces,
        figure_layout(
            title,
            barmode="overlay",
            bargap=0,
            xaxis={"title": {"text": "weight value"}},
            yaxis={"title": {"text": "count"}},
        ),
    )
