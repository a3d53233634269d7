"""Export: the compressed artefact, the deployable file of a runtime, the recipe, an ONNX file and the results."""

import streamlit as st

from pages.ui import errors, routes, runtime_panel, state, widgets
from pages.ui import review_panels as panels
from pages.ui.explore_panels import measure

routes.require_router()
st.title("Export")
with errors.guard("Export"):
    model_id, mode, recipe = state.model_id(), state.eval_mode(), state.current_recipe()
    res = measure(model_id, recipe, mode)
    widgets.recipe_summary(recipe, model_id, res)
    top_left, top_right = st.columns(2, gap="medium")
    with top_left.container(border=True):
        st.subheader("Compressed model (.psz)")
        panels.artifact_download(model_id, recipe)
    with top_right.container(border=True):
        st.subheader("ONNX")
        panels.onnx_download(model_id, recipe)
    with st.container(border=True):
        st.subheader("Deployable file")
        runtime_panel.deploy_download(model_id, recipe)
    bottom_left, bottom_right = st.columns(2, gap="medium")
    with bottom_left.container(border=True):
        st.subheader("Recipe (JSON)")
        st.download_button(
            "Download recipe.json",
            state.pretty_json(recipe),
            "recipe.json",
            mime="application/json",
            icon=":material/download:",
            width="stretch",
        )
        st.code(state.pretty_json(recipe), language="json")
    with bottom_right.container(border=True):
        st.subheader("Results (CSV)")
        st.download_button(
            "Download results.csv",
            panels.results_csv(model_id, recipe, mode, res),
            f"{model_id}-results.csv",
            mime="text/csv",
            icon=":material/download:",
            width="stretch",
        )
        st.caption("This recipe's result first, then every stored sweep result of this model.")
    from pages.ui.code_panel import recipe_code_panel

    with st.container(border=True):
        recipe_code_panel(model_id, recipe)
