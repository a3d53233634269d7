"""What the compressed model forgets: the confusion matrix's change and each class's accuracy change with
its 95 % interval (from ``bench.forgets``, as tidy frames)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from compress_core.present.plots.style import ACCENT, DENSE, HEIGHT, figure_layout, require_columns


def confusion_change(df: pd.DataFrame, title: str = "Confusion matrix: compressed − dense") -> go.Figure:
    """Columns: true, predicted (class names, in class order), change (images, compressed minus dense).
    Diverging around zero: on the diagonal fewer is worse, off it more is worse; zero cells stay blank."""
    require_columns(df, ["true", "predicted", "change"], "confusion_change")
    classes = list(dict.fromkeys([*df["true"], *df["predicted"]]))
    grid = df.pivot_table(index="true", columns="predicted", values="change", aggfunc="sum", fill_value=0)
    grid = grid.reindex(index=classes, columns=classes, fill_value=0)
    z = grid.to_numpy()
    reach = max(1, int(abs(z).max()) if z.size else 1)
    heat = go.Heatmap(
        z=z,
        x=classes,
        y=classes,
        colorscale="RdBu_r",
        zmid=0,
        zmin=-reach,
        zmax=reach,
        colorbar={"title": {"text": "images"}},
        text=[[f"{v:+d}" if v else "" for v in row] for row in z.astype(int)],
        texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{z:+d} images<extra></extra>",
    )
    return go.Figure(
        [heat],
        figure_layout(
            title,
            height=max(HEIGHT, 30 * len(classes) + 130),
            xaxis={"type": "category", "title": {"text": "predicted"}, "side": "bottom"},
            yaxis={"type": "category", "title": {"text": "true class"}, "autorange": "reversed", "automargin": True},
        ),
    )


def class_change(df: pd.DataFrame, title: str = "Accuracy change per class (95 % CI)") -> go.Figure:
    """Columns: class (name), change_pp, ci_low_pp, ci_high_pp, significant. One horizontal bar per class in
    the frame's order, whiskers for the interval; significant bars (``bench.forgets.SIGNIFICANCE_RULE``) are
    drawn in the accent colour, the rest grey (within noise)."""
    require_columns(df, ["class", "change_pp", "ci_low_pp", "ci_high_pp", "significant"], "class_change")
    colours = [ACCENT if s else DENSE for s in df["significant"]]
    bars = go.Bar(
        x=df["change_pp"],
        y=df["class"].astype(str),
        orientation="h",
        marker={"color": colours},
        error_x={
            "type": "data",
            "symmetric": False,
            "array": df["ci_high_pp"] - df["change_pp"],
            "arrayminus": df["change_pp"] - df["ci_low_pp"],
            "color": "#475569",
            "thickness": 1.2,
        },
        customdata=df[["ci_low_pp", "ci_high_pp"]].to_numpy(),
        hovertemplate="%{y}: %{x:+.1f} pp (95 % CI %{customdata[0]:+.1f} to %{customdata[1]:+.1f})<extra></extra>",
        name="change",
    )
    zero = {
        "type": "line",
        "xref": "x",
        "x0": 0,
        "x1": 0,
        "yref": "paper",
        "y0": 0,
        "y1": 1,
        "line": {"color": DENSE, "width": 1},
    }
    return go.Figure(
        [bars],
        figure_layout(
            title,
            height=max(HEIGHT, 26 * len(df) + 110),
            xaxis={"title": {"text": "percentage points (compressed − dense)"}, "zeroline": False},
            yaxis={"type": "category", "autorange": "reversed", "automargin": True},
            shapes=[zero],
            showlegend=False,
        ),
    )


def class_damage_lines(df: pd.DataFrame, names: Sequence[str] = (), title: str = "") -> go.Figure:
    """Columns: ``study.forgets_across.DAMAGE_COLUMNS`` (sparsity, class, change_pp, significant, ...). One line
    per class over sparsity; significant points drawn filled, the rest hollow. ``names``: class names by index."""
    require_columns(df, ["sparsity", "class", "change_pp", "significant"], "class_damage_lines")
    traces = []
    for k, d in df.sort_values("sparsity").groupby("class", sort=True):
        name = names[int(k)] if 0 <= int(k) < len(names) else f"class {k}"
        traces.append(
            go.Scatter(
                x=d["sparsity"] * 100,
                y=d["change_pp"],
                mode="lines+markers",
                name=name,
                marker={"symbol": ["circle" if s else "circle-open" for s in d["significant"]], "size": 8},
                hovertemplate=f"{name}<br>%{{x:.0f}} %% sparsity: %{{y:+.1f}} pp<extra></extra>",
            )
        )
    return go.Figure(
        traces,
        figure_layout(
            title or "Per-class accuracy change against sparsity",
            height=380,
            xaxis={"title": {"text": "sparsity (%)"}},
            yaxis={"title": {"text": "pp (compressed − dense)"}},
        ),
    )
