"""PruneScope dashboard: page config, navigation, the sidebar model picker, session state.

Run with ``streamlit run app.py``. Pages live in ``pages/`` (thin), their Streamlit helpers in
``pages/ui/``, and all computation in ``compress_core``. Why every page starts with
``routes.require_router()``: see ``pages/ui/routes.py``.
"""

import streamlit as st

from pages.ui import cache, catalogue, routes, state, widgets

st.set_page_config(
    page_title="PruneScope", page_icon=":material/content_cut:", layout="wide", initial_sidebar_state="expanded"
)
cache.startup_threads()
state.init(known=catalogue.known)

page = st.navigation(routes.sections())
state.apply_handoff()
model_id, mode, usable = widgets.sidebar()
state.sync_url()
for text in state.pop_notices():
    st.warning(text, icon=":material/link_off:")
if not usable and page.title != "About":
    st.title(page.title)
    st.error(widgets.missing_weights_message(model_id), icon=":material/download_for_offline:")
    st.info("Pick a model without the warning in the sidebar (LeNet-5 ships with PruneScope), or see About.")
    st.stop()
routes.mark_routed()
page.run()
