"""Pinned recipes side by side: one panel per metric, one colour per pin."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from compress_core.present.plots.style import COMPRESSED, DENSE, FRONTIER, figure_layout, require_columns


def compare_bars(df: pd.DataFrame, title: str = "Pinned recipes") -> go.Figure:
    """Columns: pin, metric, value, unit (long format: one row per pinned recipe and metric); one panel
    per metric, one colour per pin, named in the legend. ``pin`` names a pin uniquely (e.g. "#2 ResNet-20
    · dense fp32"): the same recipe pinned on two models is two pins. Missing values draw no bar."""
    require_columns(df, ["pin", "metric", "value", "unit"], "compare_bars")
    metrics = list(dict.fromkeys(df["metric"]))
    pins = list(dict.fromkeys(df["pin"]))
    palette = [DENSE, COMPRESSED, "#16a34a", FRONTIER, "#7c3aed"]
    n, gap = len(metrics), 0.06
    width = (1 - gap * (n - 1)) / n
    layout = figure_layout(
        title,
        height=380,
        annotations=[],
        barmode="group",
        legend={"orientation": "h", "yanchor": "top", "y": -0.08, "xanchor": "left", "x": 0.0},
    )
    traces = []
    for i, m in enumerate(metrics):
        suffix = "" if i == 0 else str(i + 1)
        lo = i * (width + gap)
        layout[f"xaxis{suffix}"] = {"domain": [lo, lo + width], "anchor": f"y{suffix}", "showticklabels": False}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "rangemode": "tozero"}
        rows = df[df["metric"] == m]
        unit = rows["unit"].iloc[0]
        layout["annotations"].append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": lo + width / 2,
                "y": 1.0,
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"{m} ({unit})",
                "font": {"size": 12},
            }
        )
        for j, pin in enumerate(pins):
            value = rows.loc[rows["pin"] == pin, "value"]
            v = float(value.iloc[0]) if len(value) and pd.notna(value.iloc[0]) else None
            traces.append(
                go.Bar(
                    x=[m],
                    y=[v],
                    name=str(pin),
                    legendgroup=str(pin),
                    showlegend=i == 0,
                    marker_color=palette[j % len(palette)],
                    xaxis=f"x{suffix}",
                    yaxis=f"y{suffix}",
                    text=["n/a" if v is None else f"{v:.3g}"],
                    textposition="auto",
                    hovertemplate=f"{pin}<br>{m}: %{{y:.4g}} {unit}<extra></extra>",
                )
            )
    return go.Figure(traces, layout)
