"""Sensitivity: which layers can lose weights or bits, measured one layer at a time."""

import streamlit as st

from pages.ui import errors, routes, state
from pages.ui import sensitivity_panels as panels

routes.require_router()
st.title("Sensitivity")
st.caption("Compress one layer at a time, everything else dense, and see how much accuracy each layer costs.")
with errors.guard("Sensitivity"):
    params = panels.form()
    panels.duration(state.model_id(), state.eval_mode(), panels.settings())
    if params is None:
        st.caption("Choose an analysis and press **Analyse**.")
    else:
        df = panels.results(state.model_id(), state.eval_mode(), params)
        if params["analysis"] == "sparsity":
            panels.ratios(state.model_id(), df, params)
