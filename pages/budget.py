"""Budget: ask it backwards: the most accurate recipe under a file-size, latency or accuracy budget."""

import streamlit as st

from pages.ui import budget_panels as panels
from pages.ui import errors, routes, state

routes.require_router()
st.title("Budget")
st.caption(
    "Give a budget; the solver picks each layer's sparsity and bit-width from its measured per-layer profile, "
    "then applies, writes and measures the answer beside the best uniform recipe under the same budget."
)
with errors.guard("Budget"):
    asked = panels.form(state.model_id())
    if asked is not None:
        panels.run(state.model_id(), state.eval_mode(), *asked)
    panels.results(state.model_id())
