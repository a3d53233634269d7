"""Latency figures: latency beside MACs per variant, the latency staircase, one recipe on every runtime."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from compress_core.present.headline import ratio
from compress_core.present.plots.style import COMPRESSED, DENSE, figure_layout, require_columns, two_panels


def latency_macs(df: pd.DataFrame, title: str = "CPU latency and compute") -> go.Figure:
    """Columns: variant, latency_ms_p50, latency_ms_iqr, macs, kernels (one row per variant; first = reference)."""
    require_columns(df, ["variant", "latency_ms_p50", "latency_ms_iqr", "macs", "kernels"], "latency_macs")
    colors = [DENSE if i == 0 else COMPRESSED for i in range(len(df))]
    latency = go.Bar(
        x=df["variant"],
        y=df["latency_ms_p50"],
        marker_color=colors,
        showlegend=False,
        xaxis="x",
        yaxis="y",
        error_y={"type": "data", "array": (df["latency_ms_iqr"].fillna(0) / 2).tolist(), "visible": True},
        customdata=df[["kernels"]].to_numpy(),
        text=[f"{v:.3g} ms" if pd.notna(v) else "n/a" for v in df["latency_ms_p50"]],
        hovertemplate="%{x}: %{y:.3f} ms on %{customdata[0]} kernels<extra></extra>",
    )
    macs = go.Bar(
        x=df["variant"],
        y=df["macs"],
        marker_color=colors,
        showlegend=False,
        xaxis="x2",
        yaxis="y2",
        text=[f"{v / 1e6:.2f} M" for v in df["macs"]],
        hovertemplate="%{x}: %{y:,} MACs<extra></extra>",
    )
    layout = figure_layout(title, **two_panels("latency p50 (ms, IQR bar)", "MACs per sample"))
    return go.Figure([latency, macs], layout)


def latency_staircase(df: pd.DataFrame, title: str = "Latency staircase") -> go.Figure:
    """Columns: fraction_kept, latency_ms_p50, latency_ms_iqr, speedup, mac_reduction (one row per fraction of
    channels kept, from ``deployment.staircase``; rows with a missing latency are left out). A step appears
    where the runtime's kernels change speed, not with every channel."""
    require_columns(
        df, ["fraction_kept", "latency_ms_p50", "latency_ms_iqr", "speedup", "mac_reduction"], "latency_staircase"
    )
    d = df.dropna(subset=["latency_ms_p50"]).sort_values("fraction_kept")
    d = d.assign(speedup=shown_speedups(d))
    x = (d["fraction_kept"] * 100).tolist()
    measured = go.Scatter(
        x=x,
        y=d["latency_ms_p50"],
        mode="lines+markers",
        name="latency p50",
        line={"shape": "hv", "color": COMPRESSED},
        error_y={"type": "data", "array": (d["latency_ms_iqr"].fillna(0) / 2).tolist(), "visible": True},
        customdata=d[["speedup", "mac_reduction"]].to_numpy(),
        hovertemplate="%{x:.1f} % of channels kept<br>%{y:.3f} ms · %{customdata[0]:.2f}× vs dense"
        "<br>MACs ÷ %{customdata[1]:.2f}<extra></extra>",
    )
    dense = d[d["fraction_kept"] >= 0.999]
    ideal = []
    if not dense.empty:  # what latency would be if it fell with the MACs
        base = float(dense["latency_ms_p50"].iloc[0])
        ideal = [
            go.Scatter(
                x=x,
                y=base / d["mac_reduction"],
                mode="lines",
                name="if latency fell with MACs",
                line={"color": DENSE, "dash": "dot"},
                hovertemplate="%{y:.3f} ms<extra></extra>",
            )
        ]
    layout = figure_layout(
        title,
        xaxis={"title": {"text": "channels kept (%)"}, "autorange": "reversed"},
        yaxis={"title": {"text": "latency p50 (ms)"}, "rangemode": "tozero"},
    )
    return go.Figure([measured, *ideal], layout)


def shown_speedups(df: pd.DataFrame, reference: str = "dense_latency_ms_p50") -> list[float | None]:
    """Per row, ``reference / latency_ms_p50`` (``headline.ratio``: the speed-up of the numbers a chart shows);
    without a ``reference`` column (frames from before it), the row's ``speedup``."""
    if reference not in df.columns:
        return [None if pd.isna(v) else float(v) for v in df["speedup"]]
    return [
        ratio(None if pd.isna(r) else r, None if pd.isna(m) else m)
        for r, m in zip(df[reference], df["latency_ms_p50"], strict=True)
    ]


def runtimes_bars(df: pd.DataFrame, title: str = "The same recipe on every runtime") -> go.Figure:
    """Columns: runtime_label, latency_ms_p50, latency_ms_iqr, speedup_vs_eager, accuracy, error (one row per
    runtime, ``deployment.across_runtimes``). A runtime that cannot take the model is a named gap."""
    require_columns(
        df,
        ["runtime_label", "latency_ms_p50", "latency_ms_iqr", "speedup_vs_eager", "accuracy", "error"],
        "runtimes_bars",
    )
    ok = df["error"].isna() & df["latency_ms_p50"].notna()
    speed = shown_speedups(df, "eager_latency_ms_p50") if "eager_latency_ms_p50" in df.columns else [None] * len(df)
    eager = df["eager_latency_ms_p50"] if "eager_latency_ms_p50" in df.columns else pd.Series([None] * len(df))
    noisy = df["latency_noisy"].fillna(False).astype(bool) if "latency_noisy" in df.columns else [False] * len(df)
    text = [
        _bar_text(lat, sp, ref, bool(nz)) if good else "n/a"
        for good, lat, sp, ref, nz in zip(ok, df["latency_ms_p50"], speed, eager, noisy, strict=True)
    ]
    bar = go.Bar(  # horizontal: each runtime's name and its label read left to right, at any width
        y=df["runtime_label"],
        x=df["latency_ms_p50"].where(ok),
        orientation="h",
        marker_color=COMPRESSED,
        text=text,
        textposition="outside",
        constraintext="none",
        textfont={"size": 13},
        cliponaxis=False,
        error_x={"type": "data", "array": (df["latency_ms_iqr"].fillna(0) / 2).tolist(), "visible": True},
        customdata=df[["accuracy"]].fillna(float("nan")).to_numpy() * 100,
        hovertemplate="%{y}: %{x:.3f} ms · accuracy %{customdata[0]:.1f} %<extra></extra>",
    )
    notes = [
        {"y": r, "x": 0, "text": "cannot take it", "showarrow": False, "xanchor": "left", "hovertext": str(e)}
        for r, e, good in zip(df["runtime_label"], df["error"], ok, strict=True)
        if not good
    ]
    top = df["latency_ms_p50"].where(ok).max()
    xaxis: dict[str, object] = {"title": {"text": "latency p50 (ms)"}, "rangemode": "tozero"}
    if pd.notna(top):  # room right of the longest bar for its label
        xaxis["range"] = [0, float(top) * 1.8]
    layout = figure_layout(
        title,
        annotations=notes,
        xaxis=xaxis,
        yaxis={"autorange": "reversed", "tickfont": {"size": 13}, "automargin": True},
    )
    return go.Figure([bar], layout)


def _bar_text(ms: float, speedup: float | None, eager_ms: float | None, noisy: bool) -> str:
    """ "0.997 ms · 2.35× vs eager 2.34 ms": the speed-up is the ratio of the two numbers in the label."""
    if speedup is None or eager_ms is None or pd.isna(eager_ms):
        return f"{ms:.3g} ms" + (" (noisy)" if noisy else "")
    return f"{ms:.3g} ms · {speedup:.2f}× vs eager {eager_ms:.3g} ms" + (" (noisy)" if noisy else "")
