"""Compare: up to four pinned recipes side by side, from any models, and a report to keep."""

import streamlit as st

from pages.ui import compare_panel, errors, routes, state
from pages.ui import forgets_compare as forgets
from pages.ui import review_panels as panels

routes.require_router()
st.title("Compare")
pins = state.pins()
if not pins:
    st.info(
        f"Nothing pinned yet. On **Explore**, press **Pin for comparison** (up to {state.MAX_PINS} recipes, "
        "from any model).",
        icon=":material/push_pin:",
    )
    st.page_link("pages/explore.py", label="Go to Explore", icon=":material/tune:")
else:
    st.caption(f"{len(pins)} of {state.MAX_PINS} pins · evaluation: {state.eval_mode()}")
    panels.pin_controls(pins)
    with errors.guard("Compare"):
        compare_panel.compare(pins, state.eval_mode())
        forgets.flips(pins, state.eval_mode())  # what each pin forgets against its dense model
