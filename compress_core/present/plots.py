"""Pure plotly figures from tidy DataFrames (no Streamlit, no computation beyond layout).

Every function takes a DataFrame with documented columns and returns a new ``go.Figure``;
callers never cache figures, only the frames. Estimated quantities are drawn hatched and say
"estimated" in their labels, so honest labelling survives screenshots.

Figures are built from plain layout dicts (no named templates, ``make_subplots`` or ``add_hline``):
those helpers cost 15-20 ms each in plotly 6, and the dashboard redraws six figures per slider move.
The Streamlit theme styles them in the browser.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

DENSE = "#94a3b8"  # slate: the dense reference
COMPRESSED = "#2563eb"  # blue: the current recipe
ACCENT = "#dc2626"  # red: the current point
FRONTIER = "#f59e0b"  # amber: Pareto-optimal points
KIND_COLORS = {"none": DENSE, "unstructured": COMPRESSED, "structured": "#16a34a"}
HEIGHT = 320


def _layout(title: str, height: int = HEIGHT, **extra: object) -> dict:
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        "height": height, "margin": {"l": 10, "r": 10, "t": 52, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        "font": {"size": 12}, **extra,
    }


def _hline(y: float, text: str) -> tuple[dict, dict]:
    """A dashed full-width horizontal line and its label (what ``add_hline`` makes, without its cost)."""
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
             "line": {"color": DENSE, "dash": "dash", "width": 1.5}}
    note = {"xref": "paper", "x": 0.01, "yref": "y", "y": y, "text": text, "showarrow": False,
            "yanchor": "top", "xanchor": "left", "font": {"color": DENSE}}
    return shape, note


def _two_panels(left_title: str, right_title: str) -> dict:
    """Side-by-side axes (x/y and x2/y2) with their titles, like ``make_subplots(1, 2)``."""
    def head(x: float, text: str) -> dict:
        return {"xref": "paper", "yref": "paper", "x": x, "y": 1.0, "xanchor": "center", "yanchor": "bottom",
                "text": text, "showarrow": False, "font": {"size": 12}}
    return {"xaxis": {"domain": [0, 0.44]}, "xaxis2": {"domain": [0.56, 1], "anchor": "y2"},
            "yaxis": {"anchor": "x"}, "yaxis2": {"anchor": "x2"},
            "annotations": [head(0.22, left_title), head(0.78, right_title)]}


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {', '.join(missing)}; got {', '.join(map(str, df.columns))}")


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def accuracy_curve(df: pd.DataFrame, current_sparsity: float | None = None, dense_accuracy: float | None = None,
                   title: str = "Accuracy vs sparsity", current: dict | None = None) -> go.Figure:
    """Columns: sparsity (fraction), accuracy, accuracy_ci_low, accuracy_ci_high (fractions), and
    optionally accuracy_oneshot: where it differs from accuracy (a recipe with post-training recovery),
    a dotted "one-shot" line is drawn under the "recovered" one.

    The red marker is the current recipe: at ``current["accuracy"]`` (with its CI as error bar and
    ``current["label"]`` as its name) when given, so it shows the very number on the accuracy card
    even when the recipe is off the curve (fine-tuned); else the curve's own point at
    ``current_sparsity``."""
    _require(df, ["sparsity", "accuracy", "accuracy_ci_low", "accuracy_ci_high"], "accuracy_curve")
    d = df.sort_values("sparsity")
    x = (d["sparsity"] * 100).tolist()
    traces = [
        go.Scatter(x=x + x[::-1],
                   y=(d["accuracy_ci_high"] * 100).tolist() + (d["accuracy_ci_low"] * 100).tolist()[::-1],
                   fill="toself", fillcolor="rgba(37,99,235,0.12)", line={"width": 0}, hoverinfo="skip",
                   name="95 % CI"),
        go.Scatter(x=x, y=d["accuracy"] * 100, mode="lines+markers", name="accuracy",
                   line={"color": COMPRESSED, "width": 2}, marker={"size": 6},
                   hovertemplate="sparsity %{x:.0f} %<br>accuracy %{y:.2f} %<extra></extra>"),
    ]
    if "accuracy_oneshot" in d and d["accuracy_oneshot"].notna().any() and not d["accuracy_oneshot"].equals(
            d["accuracy"]):
        traces.append(go.Scatter(x=x, y=d["accuracy_oneshot"] * 100, mode="lines+markers", name="one-shot",
                                 line={"color": DENSE, "width": 1.5, "dash": "dot"}, marker={"size": 4},
                                 hovertemplate="sparsity %{x:.0f} %<br>one-shot %{y:.2f} %<extra></extra>"))
        traces[1].name = "recovered"
    marker = _current_marker(d, current_sparsity, current)
    if marker is not None:
        traces.append(marker)
    shapes, notes = [], []
    if dense_accuracy is not None:
        shape, note = _hline(dense_accuracy * 100, "dense")
        shapes, notes = [shape], [note]
    legend = {"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left", "x": 0.0}  # not over the title
    layout = _layout(title, shapes=shapes, annotations=notes, legend=legend,
                     xaxis={"title": {"text": "sparsity (%)"}, "range": [-2, 100]},
                     yaxis={"title": {"text": "top-1 accuracy (%)"}})
    return go.Figure(traces, layout)


def _current_marker(d: pd.DataFrame, sparsity: float | None, current: dict | None) -> go.Scatter | None:
    style = {"size": 14, "color": ACCENT, "symbol": "diamond"}
    if sparsity is None:
        return None
    if current is not None:
        acc = current["accuracy"] * 100
        low, high = current.get("accuracy_ci_low"), current.get("accuracy_ci_high")
        err = None if low is None or high is None else {
            "type": "data", "symmetric": False, "array": [high * 100 - acc], "arrayminus": [acc - low * 100],
            "color": ACCENT, "thickness": 1.5}
        name = current.get("label", "current")
        return go.Scatter(x=[sparsity * 100], y=[acc], mode="markers", name=name, marker=style, error_y=err,
                          hovertemplate=f"{name}: %{{y:.2f}} %<extra></extra>")
    here = d[(d["sparsity"] - sparsity).abs() < 1e-9]
    if here.empty:
        return None
    return go.Scatter(x=here["sparsity"] * 100, y=here["accuracy"] * 100, mode="markers", name="current",
                      marker=style, hovertemplate="current: %{y:.2f} %<extra></extra>")


def size_breakdown(df: pd.DataFrame, title: str = "Where the bytes go") -> go.Figure:
    """Columns: item, size_bytes, basis ("measured"/"estimated"), note (see inspect.size_breakdown).
    The first row is the reference (drawn grey); estimated rows are hatched and labelled."""
    _require(df, ["item", "size_bytes", "basis", "note"], "size_breakdown")
    d = df.iloc[::-1]
    estimated = d["basis"].eq("estimated").tolist()
    colors = [DENSE if i == len(d) - 1 else COMPRESSED for i in range(len(d))]
    bar = go.Bar(
        y=[f"{item}{' (estimated)' if est else ''}" for item, est in zip(d["item"], estimated, strict=True)],
        x=d["size_bytes"], orientation="h",
        marker={"color": colors, "pattern": {"shape": ["/" if e else "" for e in estimated], "solidity": 0.3}},
        text=[human_bytes(v) for v in d["size_bytes"]], textposition="auto", customdata=d[["note", "basis"]].to_numpy(),
        hovertemplate="%{y}<br>%{x:,} bytes (%{customdata[1]})<br>%{customdata[0]}<extra></extra>")
    return go.Figure([bar], _layout(title, xaxis={"title": {"text": "bytes"}}, yaxis={"automargin": True}))


def latency_macs(df: pd.DataFrame, title: str = "CPU latency and compute") -> go.Figure:
    """Columns: variant, latency_ms_p50, latency_ms_iqr, macs, kernels (one row per variant; first = reference)."""
    _require(df, ["variant", "latency_ms_p50", "latency_ms_iqr", "macs", "kernels"], "latency_macs")
    colors = [DENSE if i == 0 else COMPRESSED for i in range(len(df))]
    latency = go.Bar(
        x=df["variant"], y=df["latency_ms_p50"], marker_color=colors, showlegend=False, xaxis="x", yaxis="y",
        error_y={"type": "data", "array": (df["latency_ms_iqr"].fillna(0) / 2).tolist(), "visible": True},
        customdata=df[["kernels"]].to_numpy(),
        text=[f"{v:.3g} ms" if pd.notna(v) else "n/a" for v in df["latency_ms_p50"]],
        hovertemplate="%{x}: %{y:.3f} ms on %{customdata[0]} kernels<extra></extra>")
    macs = go.Bar(x=df["variant"], y=df["macs"], marker_color=colors, showlegend=False, xaxis="x2", yaxis="y2",
                  text=[f"{v / 1e6:.2f} M" for v in df["macs"]], hovertemplate="%{x}: %{y:,} MACs<extra></extra>")
    layout = _layout(title, **_two_panels("latency p50 (ms, IQR bar)", "MACs per sample"))
    return go.Figure([latency, macs], layout)


def latency_staircase(df: pd.DataFrame, title: str = "Latency staircase") -> go.Figure:
    """Columns: fraction_kept, latency_ms_p50, latency_ms_iqr, speedup, mac_reduction (one row per fraction of
    channels kept, from ``deployment.staircase``; rows with a missing latency are left out). A step appears
    where the runtime's kernels change speed, not with every channel."""
    _require(df, ["fraction_kept", "latency_ms_p50", "latency_ms_iqr", "speedup", "mac_reduction"],
             "latency_staircase")
    d = df.dropna(subset=["latency_ms_p50"]).sort_values("fraction_kept")
    x = (d["fraction_kept"] * 100).tolist()
    measured = go.Scatter(
        x=x, y=d["latency_ms_p50"], mode="lines+markers", name="latency p50", line={"shape": "hv", "color": COMPRESSED},
        error_y={"type": "data", "array": (d["latency_ms_iqr"].fillna(0) / 2).tolist(), "visible": True},
        customdata=d[["speedup", "mac_reduction"]].to_numpy(),
        hovertemplate="%{x:.1f} % of channels kept<br>%{y:.3f} ms · %{customdata[0]:.2f}× vs dense"
                      "<br>MACs ÷ %{customdata[1]:.2f}<extra></extra>")
    dense = d[d["fraction_kept"] >= 0.999]
    ideal = []
    if not dense.empty:  # what latency would be if it fell with the MACs
        base = float(dense["latency_ms_p50"].iloc[0])
        ideal = [go.Scatter(x=x, y=base / d["mac_reduction"], mode="lines", name="if latency fell with MACs",
                            line={"color": DENSE, "dash": "dot"}, hovertemplate="%{y:.3f} ms<extra></extra>")]
    layout = _layout(title, xaxis={"title": {"text": "channels kept (%)"}, "autorange": "reversed"},
                     yaxis={"title": {"text": "latency p50 (ms)"}, "rangemode": "tozero"})
    return go.Figure([measured, *ideal], layout)


def runtimes_bars(df: pd.DataFrame, title: str = "The same recipe on every runtime") -> go.Figure:
    """Columns: runtime_label, latency_ms_p50, latency_ms_iqr, speedup_vs_eager, accuracy, error (one row per
    runtime, ``deployment.across_runtimes``). A runtime that cannot take the model is a named gap."""
    _require(df, ["runtime_label", "latency_ms_p50", "latency_ms_iqr", "speedup_vs_eager", "accuracy", "error"],
             "runtimes_bars")
    ok = df["error"].isna() & df["latency_ms_p50"].notna()
    text = [f"{lat:.3g} ms · {sp:.1f}× eager" if good and pd.notna(sp) else (f"{lat:.3g} ms" if good else "n/a")
            for good, lat, sp in zip(ok, df["latency_ms_p50"], df["speedup_vs_eager"], strict=True)]
    bar = go.Bar(x=df["runtime_label"], y=df["latency_ms_p50"].where(ok), marker_color=COMPRESSED, text=text,
                 error_y={"type": "data", "array": (df["latency_ms_iqr"].fillna(0) / 2).tolist(), "visible": True},
                 customdata=df[["accuracy"]].fillna(float("nan")).to_numpy() * 100,
                 hovertemplate="%{x}: %{y:.3f} ms · accuracy %{customdata[0]:.1f} %<extra></extra>")
    notes = [{"x": r, "y": 0, "text": "cannot take it", "showarrow": False, "yanchor": "bottom",
              "hovertext": str(e)} for r, e, good in zip(df["runtime_label"], df["error"], ok, strict=True) if not good]
    return go.Figure([bar], _layout(title, annotations=notes, yaxis={"title": {"text": "latency p50 (ms)"}}))


def layer_sparsity(df: pd.DataFrame, title: str = "Sparsity per layer") -> go.Figure:
    """Columns: layer, type, sparsity (fraction), nonzero, dense_params (see inspect.layer_table)."""
    _require(df, ["layer", "type", "sparsity", "nonzero", "dense_params"], "layer_sparsity")
    bar = go.Bar(x=df["layer"], y=df["sparsity"] * 100, marker_color=COMPRESSED,
                 customdata=df[["type", "nonzero", "dense_params"]].to_numpy(),
                 hovertemplate="%{x} (%{customdata[0]})<br>%{y:.1f} % removed<br>"
                               "%{customdata[1]:,} of %{customdata[2]:,} weights left<extra></extra>")
    return go.Figure([bar], _layout(title, yaxis={"title": {"text": "weights removed (%)"}, "range": [0, 100]},
                                    xaxis=_thinned_ticks(list(df["layer"]))))


MAX_TICK_LABELS = 24


def _thinned_ticks(names: list[str]) -> dict:
    """Category axis that labels at most ``MAX_TICK_LABELS`` layers (every k-th, evenly), so 55 ResNet-56
    layer names never overlap; every bar still names its layer on hover."""
    step = max(1, -(-len(names) // MAX_TICK_LABELS))
    shown = names[::step]
    return {"type": "category", "tickangle": -45 if len(shown) > 8 else 0, "automargin": True,
            "tickmode": "array", "tickvals": shown, "ticktext": shown, "tickfont": {"size": 10}}


def weight_histogram(df: pd.DataFrame, title: str = "Weight values before and after") -> go.Figure:
    """Columns: model ("before"/"after"), bin_center, bin_left, bin_right, count (inspect.weight_histogram)."""
    _require(df, ["model", "bin_center", "bin_left", "bin_right", "count"], "weight_histogram")
    traces = []
    for name, color in (("before", DENSE), ("after", COMPRESSED)):
        d = df[df["model"] == name]
        traces.append(go.Bar(x=d["bin_center"], y=d["count"], width=(d["bin_right"] - d["bin_left"]).tolist(),
                             name=name, marker_color=color, opacity=0.6,
                             hovertemplate=f"{name}: %{{y:,}} weights near %{{x:.3g}}<extra></extra>"))
    return go.Figure(traces, _layout(title, barmode="overlay", bargap=0, xaxis={"title": {"text": "weight value"}},
                                     yaxis={"title": {"text": "count"}}))


def sensitivity_heatmap(df: pd.DataFrame, x: str = "sparsity", value: str = "accuracy_drop",
                        title: str = "Accuracy drop per layer") -> go.Figure:
    """Columns: layer, ``x`` (sparsity fraction or bits), ``value`` (fraction). Rows keep layer order."""
    _require(df, ["layer", x, value], "sensitivity_heatmap")
    layers = list(dict.fromkeys(df["layer"]))
    grid = df.pivot_table(index="layer", columns=x, values=value, aggfunc="mean").reindex(layers)
    labels = [f"{c * 100:.0f} %" if x == "sparsity" else f"{c} bit" for c in grid.columns]
    heat = go.Heatmap(z=grid.values * 100, x=labels, y=layers, colorscale="Reds", zmin=0,
                      colorbar={"title": {"text": "drop (pp)"}},
                      text=[[f"{v * 100:.1f}" for v in row] for row in grid.values], texttemplate="%{text}",
                      hovertemplate="%{y} at %{x}: −%{z:.2f} pp<extra></extra>")
    return go.Figure([heat], _layout(title, height=max(HEIGHT, 28 * len(layers) + 110),
                                     xaxis={"type": "category", "title": {"text": x}},
                                     yaxis={"type": "category", "autorange": "reversed", "automargin": True}))


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
    options = [[m * 10.0**k for k in decades for m in ms if lo <= m * 10.0**k <= hi]
               for ms in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7))]
    ticks = next((t for t in options if len(t) >= 3), max(options, key=len))
    return {**axis, "range": [math.log10(lo), math.log10(hi)], "tickvals": ticks,
            "ticktext": [human_bytes(t).replace(".0 ", " ") for t in ticks]}


def _x_text(x: str, v: float) -> str:
    if x == "size_bytes":
        return f"file size {human_bytes(v)}"
    if x == "latency_ms_p50":
        return f"latency {v:.3g} ms"
    return f"{AXIS_TITLES.get(x, x)} {v:,.4g}"


def _hover(d: pd.DataFrame, x: str, y: str) -> list[str]:
    noisy = d["latency_noisy"] if x == "latency_ms_p50" and "latency_noisy" in d else [False] * len(d)
    return [f"{label}<br>{_x_text(x, xv)}{' (noisy)' if n else ''}<br>top-1 {yv:.2%}"
            for label, xv, yv, n in zip(d["label"], d[x], d[y], noisy, strict=True)]


def tradeoff_scatter(df: pd.DataFrame, x: str = "size_bytes", y: str = "accuracy", frontier: str = "pareto",
                     title: str = "Accuracy vs size") -> go.Figure:
    """Columns: ``x``, ``y`` (fraction), kind, label; optional booleans ``frontier``, ``chance`` (at chance
    level: drawn hollow, in their own legend entry) and ``latency_noisy`` (said on hover).
    Points carry their row index as customdata so a selection maps back to the row. A latency axis
    starts at 0, so recipes that all share the dense latency sit at it instead of around a bare ±0.5."""
    _require(df, [x, y, "kind", "label"], "tradeoff_scatter")
    chance = df["chance"].astype(bool) if "chance" in df.columns else pd.Series(False, index=df.index)
    traces = []
    for kind, d in df[~chance].groupby("kind", sort=False):
        traces.append(go.Scatter(
            x=d[x], y=d[y] * 100, mode="markers", name=KIND_NAMES.get(str(kind), str(kind)), customdata=list(d.index),
            marker={"size": 9, "color": KIND_COLORS.get(str(kind), "#7c3aed"), "opacity": 0.8},
            text=_hover(d, x, y), hovertemplate="%{text}<extra></extra>"))
    if chance.any():
        d = df[chance]
        traces.append(go.Scatter(
            x=d[x], y=d[y] * 100, mode="markers", name="at chance level (off the front)", customdata=list(d.index),
            marker={"size": 9, "color": "rgba(0,0,0,0)", "line": {"color": DENSE, "width": 1.5}},
            text=_hover(d, x, y), hovertemplate="%{text}<br>no better than guessing<extra></extra>"))
    if frontier in df.columns and df[frontier].any():
        f = df[df[frontier].astype(bool) & ~chance].sort_values(x)
        traces.append(go.Scatter(x=f[x], y=f[y] * 100, mode="lines", name="Pareto front",
                                 line={"color": FRONTIER, "width": 2, "shape": "hv"}, hoverinfo="skip"))
    xaxis: dict = {"title": {"text": AXIS_TITLES.get(x, x)}}
    if x == "size_bytes":
        xaxis.update(size_axis(df[x]))
    elif x == "latency_ms_p50":
        top = pd.to_numeric(df[x], errors="coerce").max()
        xaxis.update(range=[0, float(top) * 1.15 if pd.notna(top) and top > 0 else 1.0])
    # below the plot: never on the title
    legend = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0}
    return go.Figure(traces, _layout(title, height=420, xaxis=xaxis, legend=legend,
                                     yaxis={"title": {"text": "top-1 accuracy (%)"}}))


def compare_bars(df: pd.DataFrame, title: str = "Pinned recipes") -> go.Figure:
    """Columns: pin, metric, value, unit (long format: one row per pinned recipe and metric); one panel
    per metric, one colour per pin, named in the legend. ``pin`` names a pin uniquely (e.g. "#2 ResNet-20
    · dense fp32"): the same recipe pinned on two models is two pins. Missing values draw no bar."""
    _require(df, ["pin", "metric", "value", "unit"], "compare_bars")
    metrics = list(dict.fromkeys(df["metric"]))
    pins = list(dict.fromkeys(df["pin"]))
    palette = [DENSE, COMPRESSED, "#16a34a", FRONTIER, "#7c3aed"]
    n, gap = len(metrics), 0.06
    width = (1 - gap * (n - 1)) / n
    layout = _layout(title, height=380, annotations=[], barmode="group",
                     legend={"orientation": "h", "yanchor": "top", "y": -0.08, "xanchor": "left", "x": 0.0})
    traces = []
    for i, m in enumerate(metrics):
        suffix = "" if i == 0 else str(i + 1)
        lo = i * (width + gap)
        layout[f"xaxis{suffix}"] = {"domain": [lo, lo + width], "anchor": f"y{suffix}", "showticklabels": False}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "rangemode": "tozero"}
        rows = df[df["metric"] == m]
        unit = rows["unit"].iloc[0]
        layout["annotations"].append({"xref": "paper", "yref": "paper", "x": lo + width / 2, "y": 1.0,
                                      "xanchor": "center", "yanchor": "bottom", "showarrow": False,
                                      "text": f"{m} ({unit})", "font": {"size": 12}})
        for j, pin in enumerate(pins):
            value = rows.loc[rows["pin"] == pin, "value"]
            v = float(value.iloc[0]) if len(value) and pd.notna(value.iloc[0]) else None
            traces.append(go.Bar(x=[m], y=[v], name=str(pin), legendgroup=str(pin), showlegend=i == 0,
                                 marker_color=palette[j % len(palette)], xaxis=f"x{suffix}", yaxis=f"y{suffix}",
                                 text=["n/a" if v is None else f"{v:.3g}"], textposition="auto",
                                 hovertemplate=f"{pin}<br>{m}: %{{y:.4g}} {unit}<extra></extra>"))
    return go.Figure(traces, layout)


BUDGET_SERIES = {  # series of the Budget page's chart -> (marker colour, size, symbol)
    "uniform grid": (DENSE, 8, "circle"),
    "solver candidate": (COMPRESSED, 8, "diamond-open"),
    "uniform best": (FRONTIER, 15, "star"),
    "solver (verified)": (ACCENT, 16, "star"),
}


def budget_chart(df: pd.DataFrame, x: str = "size_bytes", limit: float | None = None,
                 title: str = "The answer against the uniform grid") -> go.Figure:
    """Columns: series (keys of ``BUDGET_SERIES``), label, accuracy (fraction), ``x``; optional boolean
    ``pareto`` on uniform-grid rows (drawn as the uniform Pareto front). ``limit``: the budget on ``x``,
    a dashed vertical line."""
    _require(df, ["series", "label", "accuracy", x], "budget_chart")
    traces = []
    for series, (color, size, symbol) in BUDGET_SERIES.items():
        d = df[(df["series"] == series) & df[x].notna()]
        if d.empty:
            continue
        traces.append(go.Scatter(x=d[x], y=d["accuracy"] * 100, mode="markers", name=series,
                                 marker={"size": size, "color": color, "symbol": symbol},
                                 text=_hover(d, x, "accuracy"), hovertemplate="%{text}<extra></extra>"))
    if "pareto" in df.columns:
        f = df[(df["series"] == "uniform grid") & df["pareto"].fillna(False).astype(bool)].sort_values(x)
        traces.append(go.Scatter(x=f[x], y=f["accuracy"] * 100, mode="lines", name="uniform Pareto front",
                                 line={"color": FRONTIER, "width": 2, "shape": "hv"}, hoverinfo="skip"))
    shapes = [] if limit is None else [{"type": "line", "xref": "x", "x0": limit, "x1": limit, "yref": "paper",
                                        "y0": 0, "y1": 1, "line": {"color": ACCENT, "dash": "dash", "width": 1.5}}]
    xaxis: dict = {"title": {"text": AXIS_TITLES.get(x, x)}}
    if x == "size_bytes":
        xaxis.update(size_axis(df[x]))
    legend = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0}
    return go.Figure(traces, _layout(title, height=440, xaxis=xaxis, legend=legend, shapes=shapes,
                                     yaxis={"title": {"text": "top-1 accuracy (%)"}}))
