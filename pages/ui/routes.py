"""The page list, and the one workaround for Streamlit's legacy multipage mode.

Why the workaround: with a ``pages/`` folder beside app.py, Streamlit starts in its legacy
multipage mode and stays there until ``st.navigation`` has been called once in the process. In that
mode a page's URL runs the page file *alone*, without app.py: the first run of a fresh server opened
on a deep link (``/sweep``), and every AppTest run after the first (AppTest resets the mode before
each run). Such a run would have no sidebar, no session state and no URL handling.

So app.py calls ``mark_routed()`` right before it runs a page, and every page starts with
``require_router()``: when the mark is missing, it calls ``st.navigation`` itself (which switches
the legacy mode off, with the same pages, so the rerun stays on this page) and reruns, this time
through app.py. Nothing else in the app knows about the legacy mode.
"""

from __future__ import annotations

import streamlit as st

from . import state


def sections() -> dict[str, list]:
    """Navigation sections -> ``st.Page`` objects (url paths come from the file names)."""
    return {
        "Compress": [
            st.Page("pages/explore.py", title="Explore", icon=":material/tune:", default=True),
            st.Page("pages/sensitivity.py", title="Sensitivity", icon=":material/grid_on:"),
            st.Page("pages/sweep.py", title="Sweep", icon=":material/scatter_plot:"),
            st.Page("pages/budget.py", title="Budget", icon=":material/savings:"),
        ],
        "Review": [
            st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
            st.Page("pages/export.py", title="Export", icon=":material/download:"),
        ],
        "Help": [st.Page("pages/about.py", title="About", icon=":material/help:")],
    }


def mark_routed() -> None:
    """app.py, right before ``page.run()``: this script run went through the router."""
    st.session_state[state.ROUTED] = True


def require_router() -> None:
    """First line of every page: make sure app.py (router, sidebar, state) ran in this script run."""
    if st.session_state.pop(state.ROUTED, False):
        return
    st.navigation(sections(), position="hidden")  # same pages, so the rerun stays on this one
    st.rerun()
