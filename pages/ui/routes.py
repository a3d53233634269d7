"""The page list, shared by app.py's ``st.navigation`` and ``state.require_router``."""

from __future__ import annotations

import streamlit as st


def sections() -> dict[str, list]:
    """Navigation sections -> ``st.Page`` objects (url paths come from the file names)."""
    return {
        "Compress": [
            st.Page("pages/explore.py", title="Explore", icon=":material/tune:", default=True),
            st.Page("pages/sensitivity.py", title="Sensitivity", icon=":material/grid_on:"),
            st.Page("pages/sweep.py", title="Sweep", icon=":material/scatter_plot:"),
        ],
        "Review": [
            st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
            st.Page("pages/export.py", title="Export", icon=":material/download:"),
        ],
        "Help": [st.Page("pages/about.py", title="About", icon=":material/help:")],
    }
