"""About: what PruneScope measures, how honestly, and on which models."""

import streamlit as st

from pages.ui import about, routes

routes.require_router()
st.title("About PruneScope")
st.markdown(about.INTRO)
with st.expander("Pruning and quantization in two minutes", expanded=True):
    st.markdown(about.CONCEPTS)
with st.expander("What is measured, what is simulated"):
    st.markdown(about.HONESTY)
st.subheader("Model zoo")
st.dataframe(
    about.zoo_frame(),
    hide_index=True,
    width="stretch",
    column_config={"reference top-1": st.column_config.NumberColumn(format="percent")},
)
st.caption(about.CREDITS)
