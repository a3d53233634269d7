"""Accuracy figures: the accuracy-vs-sparsity curve with its CI band and the current recipe, and the
per-layer sensitivity heatmap."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from compress_core.present.plots.style import (
    ACCENT,
    COMPRESSED,
    DENSE,
    HEIGHT,
    dashed_hline,
    figure_layout,
    require_columns,
)


def accuracy_curve(
    df: pd.DataFrame,
    current_sparsity: float | None = None,
    dense_accuracy: float | None = None,
    title: str = "Accuracy vs sparsity",
    current: dict | None = None,
) -> go.Figure:
    """Columns: sparsity (fraction), accuracy, accuracy_ci_low, accuracy_ci_high (fractions), and
    optionally accuracy_oneshot: where it differs from accuracy (a recipe with post-training recovery),
    a dotted "one-shot" line is drawn under the "recovered" one.

    The red marker is the current recipe: at ``current["accuracy"]`` (with its CI as error bar and
    ``current["label"]`` as its name) when given, so it shows the very number on the accuracy card
    even when the recipe is off the curve (fine-tuned); else the curve's own point at
    ``current_sparsity``."""
    require_columns(df, ["sparsity", "accuracy", "accuracy_ci_low", "accuracy_ci_high"], "accuracy_curve")
    d = df.sort_values("sparsity")
    traces = _curves(d, (d["sparsity"] * 100).tolist())
    marker = _current_marker(d, current_sparsity, current)
    if marker is not None:
        traces.append(marker)
    shapes, notes = [], []
    if dense_accuracy is not None:
        shape, note = dashed_hline(dense_accuracy * 100, "dense")
        shapes, notes = [shape], [note]
    legend = {"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left", "x": 0.0}  # not over the title
    layout = figure_layout(
        title,
        shapes=shapes,
        annotations=notes,
        legend=legend,
        xaxis={"title": {"text": "sparsity (%)"}, "range": [-2, 100]},
        yaxis={"title": {"text": "top-1 accuracy (%)"}},
    )
    return go.Figure(traces, layout)


def _curves(d: pd.DataFrame, x: list[float]) -> list[go.Scatter]:
    """The 95 % CI band and the accuracy line at ``x``; where accuracy_oneshot differs, a dotted "one-shot"
    line too, and the accuracy line is the "recovered" one."""
    traces = [
        go.Scatter(
            x=x + x[::-1],
            y=(d["accuracy_ci_high"] * 100).tolist() + (d["accuracy_ci_low"] * 100).tolist()[::-1],
            fill="toself",
            fillcolor="rgba(37,99,235,0.12)",
            line={"width": 0},
            hoverinfo="skip",
            name="95 % CI",
        ),
        go.Scatter(
            x=x,
            y=d["accuracy"] * 100,
            mode="lines+markers",
            name="accuracy",
            line={"color": COMPRESSED, "width": 2},
            marker={"size": 6},
            hovertemplate="sparsity %{x:.0f} %<br>accuracy %{y:.2f} %<extra></extra>",
        ),
    ]
    if (
        "accuracy_oneshot" in d
        and d["accuracy_oneshot"].notna().any()
        and not d["accuracy_oneshot"].equals(d["accuracy"])
    ):
        traces.append(
            go.Scatter(
                x=x,
                y=d["accuracy_oneshot"] * 100,
                mode="lines+markers",
                name="one-shot",
                line={"color": DENSE, "width": 1.5, "dash": "dot"},
                marker={"size": 4},
                hovertemplate="sparsity %{x:.0f} %<br>one-shot %{y:.2f} %<extra></extra>",
            )
        )
        traces[1].name = "recovered"
    return traces


def _current_marker(d: pd.DataFrame, sparsity: float | None, current: dict | None) -> go.Scatter | None:
    style = {"size": 14, "color": ACCENT, "symbol": "diamond"}
    if sparsity is None:
        return None
    if current is not None:
        acc = current["accuracy"] * 100
        low, high = current.get("accuracy_ci_low"), current.get("accuracy_ci_high")
        err = (
            None
            if low is None or high is None
            else {
                "type": "data",
                "symmetric": False,
                "array": [high * 100 - acc],
                "arrayminus": [acc - low * 100],
                "color": ACCENT,
                "thickness": 1.5,
            }
        )
        name = current.get("label", "current")
        return go.Scatter(
            x=[sparsity * 100],
            y=[acc],
            mode="markers",
            name=name,
            marker=style,
            error_y=err,
            hovertemplate=f"{name}: %{{y:.2f}} %<extra></extra>",
        )
    here = d[(d["sparsity"] - sparsity).abs() < 1e-9]
    if here.empty:
        return None
    return go.Scatter(
        x=here["sparsity"] * 100,
        y=here["accuracy"] * 100,
        mode="markers",
        name="current",
        marker=style,
        hovertemplate="current: %{y:.2f} %<extra></extra>",
    )


def sensitivity_heatmap(
    df: pd.DataFrame, x: str = "sparsity", value: str = "accuracy_drop", title: str = "Accuracy drop per layer"
) -> go.Figure:
    """Columns: layer, ``x`` (sparsity fraction or bits), ``value`` (fraction). Rows keep layer order."""
    require_columns(df, ["layer", x, value], "sensitivity_heatmap")
    layers = list(dict.fromkeys(df["layer"]))
    grid = df.pivot_table(index="layer", columns=x, values=value, aggfunc="mean").reindex(layers)
    labels = [f"{c * 100:.0f} %" if x == "sparsity" else f"{c} bit" for c in grid.columns]
    heat = go.Heatmap(
        z=grid.values * 100,
        x=labels,
        y=layers,
        colorscale="Reds",
        zmin=0,
        colorbar={"title": {"text": "drop (pp)"}},
        text=[[f"{v * 100:.1f}" for v in row] for row in grid.values],
        texttemplate="%{text}",
        hovertemplate="%{y} at %{x}: −%{z:.2f} pp<extra></extra>",
    )
    return go.Figure(
        [heat],
        figure_layout(
            title,
            height=max(HEIGHT, 28 * len(layers) + 110),
            xaxis={"type": "category", "title": {"text": x}},
            yaxis={"type": "category", "autorange": "reversed", "automargin": True},
        ),
    )
