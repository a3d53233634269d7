"""PruneScope dashboard pages (run through ``app.py``'s ``st.navigation``; not imported as modules)."""
