"""Sweep: a grid of recipes, measured and saved to disk, with the Pareto fronts."""

import streamlit as st

from pages.ui import cache, errors, routes, state
from pages.ui import sweep_panels as panels

routes.require_router()
st.title("Sweep")
st.caption(
    "Every combination of pruning kind × sparsity × bit-width. Results are saved on disk, so a reload or "
    "a rerun shows them at once; recipes already measured are read back, not recomputed."
)
with errors.guard("Sweep"):
    submitted = panels.form()
    if submitted and submitted[0]:
        panels.run(state.model_id(), state.eval_mode(), *submitted)
    runtime = panels.view_runtime()
    stored = cache.store_frame(state.model_id(), state.eval_mode(), runtime)
    panels.results(state.model_id(), state.eval_mode(), stored, runtime)
