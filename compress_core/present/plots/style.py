"""What every figure shares: the colours, the plain layout dict, a dashed reference line, two side-by-side
panels, the column check and byte labels."""

from __future__ import annotations

import pandas as pd

DENSE = "#94a3b8"  # slate: the dense reference
COMPRESSED = "#2563eb"  # blue: the current recipe
ACCENT = "#dc2626"  # red: the current point
FRONTIER = "#f59e0b"  # amber: Pareto-optimal points
KIND_COLORS = {"none": DENSE, "unstructured": COMPRESSED, "structured": "#16a34a"}
HEIGHT = 320


def figure_layout(title: str, height: int = HEIGHT, **extra: object) -> dict:
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 52, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        "font": {"size": 12},
        **extra,
    }


def dashed_hline(y: float, text: str) -> tuple[dict, dict]:
    """A dashed full-width horizontal line and its label (what ``add_hline`` makes, without its cost)."""
    shape = {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": y,
        "y1": y,
        "line": {"color": DENSE, "dash": "dash", "width": 1.5},
    }
    note = {
        "xref": "paper",
        "x": 0.01,
        "yref": "y",
        "y": y,
        "text": text,
        "showarrow": False,
        "yanchor": "top",
        "xanchor": "left",
        "font": {"color": DENSE},
    }
    return shape, note


def two_panels(left_title: str, right_title: str) -> dict:
    """Side-by-side axes (x/y and x2/y2) with their titles, like ``make_subplots(1, 2)``."""

    def head(x: float, text: str) -> dict:
        return {
            "xref": "paper",
            "yref": "paper",
            "x": x,
            "y": 1.0,
            "xanchor": "center",
            "yanchor": "bottom",
            "text": text,
            "showarrow": False,
            "font": {"size": 12},
        }

    return {
        "xaxis": {"domain": [0, 0.44]},
        "xaxis2": {"domain": [0.56, 1], "anchor": "y2"},
        "yaxis": {"anchor": "x"},
        "yaxis2": {"anchor": "x2"},
        "annotations": [head(0.22, left_title), head(0.78, right_title)],
    }


def require_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {', '.join(missing)}; got {', '.join(map(str, df.columns))}")


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
