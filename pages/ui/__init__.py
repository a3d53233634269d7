"""The only Streamlit-aware helpers: state keys, widgets, cache wrappers and page panels."""
