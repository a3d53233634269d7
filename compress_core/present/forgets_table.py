"""The report's flip table: what each compressed model answers differently from the dense one (``bench.forgets``),
as one HTML section; empty when no result carries ``forgets``. Pure: no Streamlit, no computation beyond counting."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from compress_core.bench.forgets import CI_METHOD, SIGNIFICANCE_RULE, Forgets

FLIP_COLUMNS = [
    "recipe",
    "top-1",
    "agreement",
    "right→wrong",
    "wrong→right",
    "mean KL (nats)",
    "classes hurt",
    "classes spared",
]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.2%}"


def flip_frame(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per result that carries ``forgets`` (``FLIP_COLUMNS``); unlabelled images show agreement and KL."""
    rows = []
    for r in results:
        if not r.get("forgets"):
            continue
        f = Forgets.from_dict(r["forgets"])
        spared = [c["class"] for c in f.per_class if c["significant"] and c["change_vs_overall_pp"] > 0]
        labelled = f.labelled and f.flips_right_to_wrong is not None
        rows.append(
            {
                "recipe": r.get("recipe_label", ""),
                "top-1": _pct(f.accuracy),
                "agreement": _pct(f.agreement),
                "right→wrong": f"{f.flips_right_to_wrong} ({_pct(f.flip_rate_right_to_wrong)})" if labelled else "–",
                "wrong→right": f"{f.flips_wrong_to_right} ({_pct(f.flip_rate_wrong_to_right)})" if labelled else "–",
                "mean KL (nats)": f"{f.mean_kl:.4f}",
                "classes hurt": ", ".join(map(str, f.classes_hurt())) or "none" if labelled else "–",
                "classes spared": ", ".join(map(str, spared)) or "none" if labelled else "–",
            }
        )
    return pd.DataFrame(rows, columns=FLIP_COLUMNS)


def flip_section(results: Sequence[Mapping[str, Any]]) -> str:
    """The report section with the flip table, or "" when no result carries ``forgets``."""
    df = flip_frame(results)
    if df.empty:
        return ""
    return (
        "<h2>What the compressed models forget</h2>"
        "<p class='sub'>Answers that changed between right and wrong against the dense model on the same images; "
        f"classes hurt or spared: {html.escape(SIGNIFICANCE_RULE)}. Interval: {html.escape(CI_METHOD)}.</p>"
        f"<div class='flips'>{df.to_html(index=False, escape=True, border=0, na_rep='–')}</div>"
    )
