"""Sweep page panels: the grid form, the run with its progress bar, and the stored results."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core import plots
from compress_core.recipe import BITS, CRITERIA, SCOPES, Recipe

from . import cache, state
from .widgets import CRITERION_LABELS, SCOPE_LABELS, bits_label

SPARSITY_CHOICES = (0.0, 0.1, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95)
TABLE_COLUMNS = ["label", "accuracy", "params_nonzero", "size_bytes", "compression_ratio", "latency_ms_p50",
                 "speedup", "latency_kernels", "pareto_size", "pareto_latency", "simulated"]


def form() -> list[Recipe] | None:
    """The grid the user submitted (deduplicated by ``sweep.grid``), or None."""
    from compress_core import sweep

    with st.form("sweep_form", border=True):
        c1, c2, c3 = st.columns(3)
        kinds = c1.multiselect("Pruning kinds", ["unstructured", "structured"], default=["unstructured"],
                               key=state.SWEEP_KINDS)
        sparsities = c2.multiselect("Sparsities", SPARSITY_CHOICES, default=[0.0, 0.5, 0.75, 0.9],
                                    key=state.SWEEP_SPARSITIES, format_func=lambda f: f"{f:.0%}")
        bits = c3.multiselect("Bit-widths", list(BITS), default=[32, 8, 4], key=state.SWEEP_BITS,
                              format_func=bits_label)
        c4, c5, c6 = st.columns(3)
        criterion = c4.selectbox("Criterion", list(CRITERIA), index=list(CRITERIA).index("l1"),
                                 key=state.SWEEP_CRITERION, format_func=lambda c: CRITERION_LABELS.get(c, c))
        scope = c5.radio("Scope", list(SCOPES), index=list(SCOPES).index("global"), key=state.SWEEP_SCOPE,
                         horizontal=True, format_func=lambda s: SCOPE_LABELS[s])
        int8 = c6.checkbox("Also real int8 kernels for 8-bit points", key=state.SWEEP_INT8)
        submitted = st.form_submit_button("Run sweep", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    if not (kinds and sparsities and bits):
        st.warning("Pick at least one pruning kind, one sparsity and one bit-width.")
        return None
    return sweep.grid(kinds, sorted(sparsities), bits, criterion=criterion, scope=scope, int8=int8)


def run(model_id: str, mode: str, recipes: list[Recipe]) -> None:
    bar = st.progress(0.0, text=f"Measuring {len(recipes)} recipe(s)…")

    def on_result(i: int, n: int, row: dict) -> None:
        where = "stored earlier" if row["cached"] else f"{row['accuracy']:.1%}"
        bar.progress(i / n, text=f"{i} of {n} · {row['label']} · {where}")

    df = cache.run_sweep(model_id, recipes, mode, on_result)
    bar.empty()
    fresh = int((~df["cached"]).sum()) if len(df) else 0
    st.success(f"Sweep done: {len(df)} recipe(s), {fresh} newly measured, all saved to disk.",
               icon=":material/check_circle:")


def _with_pareto(df: pd.DataFrame) -> pd.DataFrame:
    from compress_core.sweep import mark_pareto

    out = df.copy()
    out["pareto_size"] = mark_pareto(out, "size_bytes", "accuracy")
    out["pareto_latency"] = mark_pareto(out, "latency_ms_p50", "accuracy")
    return out


def _selected_index(event: object) -> int | None:
    try:
        points = event["selection"]["points"]  # type: ignore[index]
        return int(points[0]["customdata"]) if points else None
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def results(df: pd.DataFrame) -> None:
    """Pareto charts, the table, and a picker that opens a row's recipe in Explore."""
    if df.empty:
        st.info("No stored results for this model and evaluation size yet: run a sweep above.",
                icon=":material/info:")
        return
    df = _with_pareto(df)
    left, right = st.columns(2, gap="medium")
    picked = []
    panels = ((left, "size_bytes", "pareto_size", state.SWEEP_CHART_SIZE, "Accuracy vs file size"),
              (right, "latency_ms_p50", "pareto_latency", state.SWEEP_CHART_LATENCY, "Accuracy vs CPU latency"))
    for col, x, flag, key, title in panels:
        with col:
            fig = plots.tradeoff_scatter(df.rename(columns={flag: "pareto"}), x=x, title=title)
            picked.append(_selected_index(st.plotly_chart(fig, width="stretch", key=key, on_select="rerun",
                                                          selection_mode="points")))
    st.caption("Click a point to pick it below. Amber line: the Pareto front (no other recipe is both smaller "
               "or faster and more accurate).")
    choice = next((p for p in picked if p is not None and p in df.index), None)
    if choice is not None and st.session_state.get(state.SWEEP_PICK_FROM_CHART) != choice:
        st.session_state[state.SWEEP_PICK] = choice  # a new click on a chart moves the picker once
        st.session_state[state.SWEEP_PICK_FROM_CHART] = choice
    if st.session_state.get(state.SWEEP_PICK) not in df.index:  # e.g. after switching models
        st.session_state.pop(state.SWEEP_PICK, None)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    index = c1.selectbox("Recipe", list(df.index), key=state.SWEEP_PICK, format_func=lambda i: _option(df, i))
    if c2.button("Open in Explore", type="primary", icon=":material/tune:", width="stretch"):
        cache.remember_stored(state.model_id(), df.loc[index, "recipe_json"], state.eval_mode())
        state.open_in_explore(Recipe.from_json(df.loc[index, "recipe_json"]))
        st.switch_page("pages/explore.py")
    st.dataframe(df[TABLE_COLUMNS], width="stretch", hide_index=True, column_config={
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "size_bytes": st.column_config.NumberColumn("size (bytes)", format="localized"),
        "compression_ratio": st.column_config.NumberColumn("ratio", format="%.1f×"),
        "latency_ms_p50": st.column_config.NumberColumn("latency p50 (ms)", format="%.3f"),
        "speedup": st.column_config.NumberColumn(format="%.2f×"),
        "pareto_size": st.column_config.CheckboxColumn("front (size)"),
        "pareto_latency": st.column_config.CheckboxColumn("front (latency)")})


def _option(df: pd.DataFrame, i: int) -> str:
    row = df.loc[i]
    star = " ★" if row["pareto_size"] or row["pareto_latency"] else ""
    return f"{row['label']} — {row['accuracy']:.1%}, {plots.human_bytes(row['size_bytes'])}{star}"
