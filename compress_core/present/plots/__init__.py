"""Pure plotly figures from tidy DataFrames (no Streamlit, no computation beyond layout).

Every function takes a DataFrame with documented columns and returns a new ``go.Figure``;
callers never cache figures, only the frames. Estimated quantities are drawn hatched and say
"estimated" in their labels, so honest labelling survives screenshots.

Figures are built from plain layout dicts (no named templates, ``make_subplots`` or ``add_hline``):
those helpers cost 15-20 ms each in plotly 6, and the dashboard redraws six figures per slider move.
The Streamlit theme styles them in the browser.

The figures by subject: ``accuracy``, ``model`` (bytes, per-layer sparsity, weights), ``latency``,
``tradeoff`` (accuracy against a cost; the Budget chart), ``compare`` (pinned recipes), ``forgets`` (what a
compressed model forgets); ``style`` holds what they share. Callers use them through this package:
``plots.accuracy_curve(df)``.
"""

from compress_core.present.plots.accuracy import accuracy_curve, sensitivity_heatmap
from compress_core.present.plots.compare import compare_bars
from compress_core.present.plots.forgets import class_change, class_damage_lines, confusion_change
from compress_core.present.plots.latency import latency_macs, latency_staircase, runtimes_bars, shown_speedups
from compress_core.present.plots.model import MAX_TICK_LABELS, layer_sparsity, size_breakdown, weight_histogram
from compress_core.present.plots.style import ACCENT, COMPRESSED, DENSE, FRONTIER, HEIGHT, KIND_COLORS, human_bytes
from compress_core.present.plots.tradeoff import (
    AXIS_TITLES,
    BUDGET_SERIES,
    KIND_NAMES,
    budget_chart,
    size_axis,
    tradeoff_scatter,
)

__all__ = [
    "ACCENT",
    "AXIS_TITLES",
    "BUDGET_SERIES",
    "COMPRESSED",
    "DENSE",
    "FRONTIER",
    "HEIGHT",
    "KIND_COLORS",
    "KIND_NAMES",
    "MAX_TICK_LABELS",
    "accuracy_curve",
    "budget_chart",
    "class_change",
    "class_damage_lines",
    "compare_bars",
    "confusion_change",
    "human_bytes",
    "latency_macs",
    "latency_staircase",
    "layer_sparsity",
    "runtimes_bars",
    "sensitivity_heatmap",
    "shown_speedups",
    "size_axis",
    "size_breakdown",
    "tradeoff_scatter",
    "weight_histogram",
]
