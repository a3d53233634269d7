"""Compare's side-by-side table, sized so that every pin is on screen: four pins once ran off to the right
(each column as wide as its longest cell). Each pin gets a fixed share of the width and the measure names
stay pinned on the left; a cell too long for its column shows in full on hover. The numbers are
``views.side_by_side``'s, which reads the one headline per recipe (``compress_core.present.headline``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from . import report_panel, views

MAIN_PX = 880  # the main column's width at the narrowest desktop layout the dashboard is laid out for
MEASURE_PX = 190


def column_config(table: pd.DataFrame) -> dict:
    """Widths that fit the measure column and every pin into ``MAIN_PX``."""
    pins = [c for c in table.columns if c != "measure"]
    each = max(140, (MAIN_PX - MEASURE_PX) // max(len(pins), 1))
    return {
        "measure": st.column_config.TextColumn("", width=MEASURE_PX, pinned=True),
        **{p: st.column_config.TextColumn(p, width=each, help=p) for p in pins},
    }


def compare(pins: list[dict], mode: str) -> None:
    """The pins side by side (measures as rows, every pin on screen), their bars and their notes."""
    with st.spinner("Measuring the pinned recipes…"):
        df, failed = views.compare_frame(pins, mode)
    for message in failed:
        st.warning(f"Pin {message}. Unpin it above.", icon=":material/warning:")
    if df.empty:
        return
    table = views.side_by_side(df)
    st.dataframe(table, hide_index=True, width="stretch", column_config=column_config(table))
    st.plotly_chart(views.compare_figure(df), width="stretch", key="compare_bars", config={"displaylogo": False})
    notes = views.notes_of(df)
    if notes:
        st.caption(":material/info: **Honest numbers**\n\n" + "\n".join(f"- {n}" for n in notes))
    report_panel.download_button(
        "compare", report_panel.compare_html, pins, mode, file_name=f"prunescope-compare-{len(df)}-pins.html"
    )
