"""Trade-off figures: accuracy against size, latency or MACs with the Pareto front, and the Budget page's
answer against the uniform grid; the byte-reading log size axis both use."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from compress_core.present.headline import headline
from compress_core.present.plots.style import (
    ACCENT,
    COMPRESSED,
    DENSE,
    FRONTIER,
    KIND_COLORS,
    figure_layout,
    human_bytes,
    require_columns,
)

# the columns a latency hover needs to be the headline's (a results table: Sweep, Budget)
HEADLINE_COLUMNS = {
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "eval_samples",
    "params_nonzero",
    "params_total",
    "size_bytes",
    "dense_latency_ms_p50",
    "latency_threads",
    "latency_batch",
}
KIND_NAMES = {"none": "no pruning", "unstructured": "unstructured", "structured": "structured"}
AXIS_TITLES = {"size_bytes": "file size (bytes)", "latency_ms_p50": "CPU latency p50 (ms, batch 1)", "macs": "MACs"}


def size_axis(values) -> dict:
    """A log file-size axis whose ticks read in bytes ("100 kB", "200 kB"), two or more inside the
    data's range padded by 25 % (plotly's own log ticks can leave a lone "2" under two nearby points)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce")
    v = v[v > 0]
    axis: dict = {"type": "log"}
    if v.empty:
        return axis
    lo, hi = float(v.min()) / 1.25, float(v.max()) * 1.25
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    options = [
        [m * 10.0**k for k in decades for m in ms if lo <= m * 10.0**k <= hi]
        for ms in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7))
    ]
    ticks = next((t for t in options if len(t) >= 3), max(options, key=len))
    return {
        **axis,
        "range": [math.log10(lo), math.log10(hi)],
        "tickvals": ticks,
        "ticktext": [human_bytes(t).replace(".0 ", " ") for t in ticks],
    }


def _x_text(x: str, v: float) -> str:
    if x == "size_bytes":
        return f"file size {human_bytes(v)}"
    if x == "latency_ms_p50":
        return f"latency {v:.3g} ms"
    return f"{AXIS_TITLES.get(x, x)} {v:,.4g}"


def _latency_hover(row: dict) -> str:
    """The headline's latency (runtime, threads, batch, noisy) and the speed-up of the medians it names."""
    h = headline({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    speed = h.speed_text()
    return f"latency {h.latency_text()}" + (f"<br>{speed}" if speed else "")


def _hover(d: pd.DataFrame, x: str, y: str) -> list[str]:
    if x == "latency_ms_p50" and set(d.columns) >= HEADLINE_COLUMNS:  # a results table: the one headline
        return [f"{r['label']}<br>{_latency_hover(r)}<br>top-1 {r[y]:.2%}" for r in d.to_dict("records")]
    noisy = d["latency_noisy"] if x == "latency_ms_p50" and "latency_noisy" in d else [False] * len(d)
    return [
        f"{label}<br>{_x_text(x, xv)}{' (noisy)' if n else ''}<br>top-1 {yv:.2%}"
        for label, xv, yv, n in zip(d["label"], d[x], d[y], noisy, strict=True)
    ]


def _front(f: pd.DataFrame, x: str, y: str, name: str) -> go.Scatter:
    """A Pareto front through the rows of ``f`` (sorted on ``x``), as steps."""
    return go.Scatter(
        x=f[x],
        y=f[y] * 100,
        mode="lines",
        name=name,
        line={"color": FRONTIER, "width": 2, "shape": "hv"},
        hoverinfo="skip",
    )


def _points(df: pd.DataFrame, chance: pd.Series, x: str, y: str) -> list[go.Scatter]:
    """One marker trace per pruning kind, the points at chance level hollow in a trace of their own, and (with
    a boolean ``earlier`` column) the rows stored before the grid being looked at, faded in one trace."""
    earlier = df["earlier"].astype(bool) if "earlier" in df.columns else pd.Series(False, index=df.index)
    traces = []
    for kind, d in df[~chance & ~earlier].groupby("kind", sort=False):
        traces.append(_marker_trace(d, x, y, KIND_NAMES.get(str(kind), str(kind)), KIND_COLORS.get(str(kind))))
    if (earlier & ~chance).any():
        d = df[earlier & ~chance]
        traces.append(_marker_trace(d, x, y, "stored earlier (not this grid)", DENSE, opacity=0.35, size=7))
    if chance.any():
        d = df[chance]
        traces.append(
            go.Scatter(
                x=d[x],
                y=d[y] * 100,
                mode="markers",
                name="at chance level (off the front)",
                customdata=list(d.index),
                marker={"size": 9, "color": "rgba(0,0,0,0)", "line": {"color": DENSE, "width": 1.5}},
                text=_hover(d, x, y),
                hovertemplate="%{text}<br>no better than guessing<extra></extra>",
            )
        )
    return traces


def _marker_trace(
    d: pd.DataFrame, x: str, y: str, name: str, color: str | None, opacity: float = 0.8, size: int = 9
) -> go.Scatter:
    return go.Scatter(
        x=d[x],
        y=d[y] * 100,
        mode="markers",
        name=name,
        customdata=list(d.index),
        marker={"size": size, "color": color or "#7c3aed", "opacity": opacity},
        text=_hover(d, x, y),
        hovertemplate="%{text}<extra></extra>",
    )


def _cost_axis(values: pd.Series, x: str, from_zero: bool) -> dict:
    """The x axis of a cost: titled; bytes on a log axis; a latency (when ``from_zero``) from 0."""
    xaxis: dict = {"title": {"text": AXIS_TITLES.get(x, x)}}
    if x == "size_bytes":
        xaxis.update(size_axis(values))
    elif x == "latency_ms_p50" and from_zero:
        top = pd.to_numeric(values, errors="coerce").max()
        xaxis.update(range=[0, float(top) * 1.15 if pd.notna(top) and top > 0 else 1.0])
    return xaxis


def tradeoff_scatter(
    df: pd.DataFrame,
    x: str = "size_bytes",
    y: str = "accuracy",
    frontier: str = "pareto",
    title: str = "Accuracy vs size",
) -> go.Figure:
    """Columns: ``x``, ``y`` (fraction), kind, label; optional booleans ``frontier``, ``chance`` (at chance
    level: drawn hollow, in their own legend entry), ``earlier`` (stored before the grid being looked at:
    faded, in their own legend entry) and ``latency_noisy`` (said on hover).
    Points carry their row index as customdata so a selection maps back to the row. A latency axis
    starts at 0, so recipes that all share the dense latency sit at it instead of around a bare ±0.5."""
    require_columns(df, [x, y, "kind", "label"], "tradeoff_scatter")
    chance = df["chance"].astype(bool) if "chance" in df.columns else pd.Series(False, index=df.index)
    traces = _points(df, chance, x, y)
    if frontier in df.columns and df[frontier].any():
        traces.append(_front(df[df[frontier].astype(bool) & ~chance].sort_values(x), x, y, "Pareto front"))
    xaxis = _cost_axis(df[x], x, from_zero=True)
    # below the plot: never on the title
    legend = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0}
    return go.Figure(
        traces,
        figure_layout(title, height=420, xaxis=xaxis, legend=legend, yaxis={"title": {"text": "top-1 accuracy (%)"}}),
    )


BUDGET_SERIES = {  # series of the Budget page's chart -> (marker colour, size, symbol)
    "uniform grid": (DENSE, 8, "circle"),
    "solver candidate": (COMPRESSED, 8, "diamond-open"),
    "uniform best": (FRONTIER, 15, "star"),
    "solver (verified)": (ACCENT, 16, "star"),
}


def budget_chart(
    df: pd.DataFrame,
    x: str = "size_bytes",
    limit: float | None = None,
    title: str = "The answer against the uniform grid",
) -> go.Figure:
    """Columns: series (keys of ``BUDGET_SERIES``), label, accuracy (fraction), ``x``; optional boolean
    ``pareto`` on uniform-grid rows (drawn as the uniform Pareto front). ``limit``: the budget on ``x``,
    a dashed vertical line."""
    require_columns(df, ["series", "label", "accuracy", x], "budget_chart")
    traces = []
    for series, (color, size, symbol) in BUDGET_SERIES.items():
        d = df[(df["series"] == series) & df[x].notna()]
        if d.empty:
            continue
        traces.append(
            go.Scatter(
                x=d[x],
                y=d["accuracy"] * 100,
                mode="markers",
                name=series,
                marker={"size": size, "color": color, "symbol": symbol},
                text=_hover(d, x, "accuracy"),
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if "pareto" in df.columns:
        f = df[(df["series"] == "uniform grid") & df["pareto"].fillna(False).astype(bool)].sort_values(x)
        traces.append(_front(f, x, "accuracy", "uniform Pareto front"))
    line = {"color": ACCENT, "dash": "dash", "width": 1.5}
    shapes = [] if limit is None else [_vline(limit, line)]
    legend = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0}
    layout = figure_layout(
        title,
        height=440,
        xaxis=_cost_axis(df[x], x, from_zero=False),
        legend=legend,
        shapes=shapes,
        yaxis={"title": {"text": "top-1 accuracy (%)"}},
    )
    return go.Figure(traces, layout)


def _vline(x: float, line: dict) -> dict:
    """A full-height vertical line at ``x`` (data coordinates)."""
    return {"type": "line", "xref": "x", "x0": x, "x1": x, "yref": "paper", "y0": 0, "y1": 1, "line": line}
