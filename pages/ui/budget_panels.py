"""Budget page panels: the budget form, the solve with its progress, and the verified answer beside the
best uniform recipe (chart, predicted vs measured, candidates), with Open in Explore and Pin to Compare."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.present import plots
from compress_core.study.solver import Budget, SearchSpace, Solution, solutions_frame, solve
from compress_core.study.solver.budget import DEFAULT_SPARSITIES, UNIFORM_SPARSITIES
from compress_core.study.store import ResultStore

from . import cache, state

# Session-state keys of this page (widgets own theirs)
SIZE_SHARE = "budget_size_share"  # the size limit as 1/k of the dense file; 0 = no size limit
LATENCY = "budget_latency_ms"  # 0 = no latency limit
DROP = "budget_drop_pp"  # 0 = no accuracy-drop limit (a checkbox turns it on)
USE_DROP = "budget_use_drop"
KINDS = "budget_kinds"
BITS = "budget_bits"
SOLUTION = "budget_solution"  # the last Solution.to_dict() of this session
B_OPEN = "b_budget_open"
B_PIN = "b_budget_pin"
BIT_CHOICES = (2, 3, 4, 8)
SPARSITIES = DEFAULT_SPARSITIES  # per-layer options
UNIFORM = UNIFORM_SPARSITIES  # the uniform grid the answer is shown beside
SHARES = (0, 5, 10, 20, 40)


def form(model_id: str) -> tuple[Budget, SearchSpace] | None:
    """The budget and search space the user submitted, or None (no submit this run)."""
    dense = cache.workbench(model_id).dense_facts()["artifact_bytes"]
    with st.form("budget_form", border=True):
        c1, c2, c3 = st.columns(3)
        share = c1.select_slider(
            "File size limit",
            SHARES,
            value=20,
            key=SIZE_SHARE,
            format_func=lambda k: "none" if k == 0 else f"1/{k} of dense ({dense // k:,} B)",
        )
        latency = c2.number_input(
            "Latency limit (ms, torch, batch 1; 0 = none)",
            min_value=0.0,
            value=0.0,
            step=0.05,
            key=LATENCY,
            format="%.3f",
        )
        use_drop = c3.checkbox("Limit the accuracy drop", value=False, key=USE_DROP)
        drop = c3.number_input(
            "Max drop (percentage points)",
            min_value=0.0,
            max_value=100.0,
            value=1.0,
            step=0.5,
            key=DROP,
            disabled=False,
        )
        k1, k2 = st.columns(2)
        kinds = k1.multiselect("Pruning kinds", ["unstructured", "structured"], default=["unstructured"], key=KINDS)
        bits = k2.multiselect("Per-layer bit-widths (besides fp32)", BIT_CHOICES, default=list(BIT_CHOICES), key=BITS)
        st.caption(
            "Each layer gets its own sparsity and bit-width. The answer is applied, written to a real "
            "file and measured, beside the best uniform recipe of the same grid the Sweep page runs."
        )
        if not st.form_submit_button("Solve", type="primary", icon=":material/calculate:"):
            return None
    if not kinds or not bits:
        st.warning("Pick at least one pruning kind and one bit-width.")
        return None
    budget = Budget(
        max_size_bytes=dense // share if share else None,
        max_latency_ms=latency or None,
        max_drop_pp=drop if use_drop else None,
    )  # ValueError (no limit at all): shown by the guard
    return budget, SearchSpace(kinds=tuple(kinds), bits=tuple(bits), sparsities=SPARSITIES, uniform_sparsities=UNIFORM)


def run(model_id: str, mode: str, budget: Budget, space: SearchSpace) -> None:
    """Solve with a live progress bar; the answer goes to session state (and every measurement to the store)."""
    slot = st.empty()
    bar = slot.progress(0.0, text="Solving…")

    def update(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"Solving — {message}")

    with ResultStore() as store:
        sol = solve(
            model_id, budget, space, mode=mode, store=store, workbench=cache.workbench(model_id), progress=update
        )
    slot.empty()
    st.session_state[SOLUTION] = sol.to_dict()


def results(model_id: str) -> None:
    """The last answer of this session, if it is for this model."""
    saved = st.session_state.get(SOLUTION)
    if not saved or saved["model_id"] != model_id:
        st.info(
            "Set a budget and press **Solve**. LeNet-5 takes seconds; a ResNet's first solve measures its "
            "per-layer profile (minutes), later ones read it back.",
            icon=":material/info:",
        )
        return
    sol = Solution(**saved)
    if not sol.feasible:
        st.error(
            "Nothing in this search space meets the budget. "
            + " ".join(s[0].upper() + s[1:] + "." for s in sol.infeasible)
        )
    if sol.result is None:
        return
    _summary(sol)
    x = "latency_ms_p50" if sol.budget.get("max_latency_ms") and not sol.budget.get("max_size_bytes") else "size_bytes"
    limit = sol.budget.get("max_latency_ms") if x == "latency_ms_p50" else sol.budget.get("max_size_bytes")
    st.plotly_chart(plots.budget_chart(solutions_frame(sol, x=x), x=x, limit=limit), width="stretch")
    _buttons(model_id, Recipe.from_dict(sol.recipe))
    st.dataframe(_predicted_table(sol), hide_index=True)
    with st.expander(f"{len(sol.candidates)} candidates measured end to end (quick subset)"):
        cands = pd.DataFrame(
            [
                {
                    "source": c["source"],
                    "recipe": c["label"],
                    "accuracy": c["accuracy"],
                    "size_bytes": c["size_bytes"],
                    "predicted accuracy": c["predicted"]["accuracy"],
                }
                for c in sol.candidates
            ]
        )
        st.dataframe(cands, hide_index=True)
    for note in sol.notes:
        st.caption(note)


def _summary(sol: Solution) -> None:
    r, u = sol.result, sol.uniform_best
    assert r is not None  # the caller shows the no-answer message instead
    c1, c2, c3 = st.columns(3)
    gain = None if u is None else f"{100 * (r['accuracy'] - u['accuracy']):+.2f} pp vs uniform"
    c1.metric("Answer: top-1 accuracy", f"{r['accuracy']:.2%}", gain)
    c2.metric("Answer: file size", plots.human_bytes(r["size_bytes"]), f"{r['size_bytes']:,} B", delta_color="off")
    lat = r.get("latency_ms_p50")
    c3.metric("Answer: latency p50", "–" if lat is None else f"{lat:.3f} ms")
    st.write(
        f"**Recipe:** {state.recipe_text(Recipe.from_dict(sol.recipe))} — "
        + (
            "no uniform recipe of the grid meets this budget."
            if u is None
            else f"**best uniform:** {u['recipe_label']}, {u['accuracy']:.2%}, {u['size_bytes']:,} B."
        )
    )


def _predicted_table(sol: Solution) -> pd.DataFrame:
    measured = sol.result or {}
    rows = []
    for key, what in (
        ("accuracy", "top-1 accuracy"),
        ("size_bytes", "file size (bytes)"),
        ("macs", "MACs"),
        ("latency_ms_p50", "latency p50 (ms)"),
    ):
        p, m, e = sol.predicted.get(key), measured.get(key), sol.prediction_error.get(key)
        rows.append({"quantity": what, "predicted": p, "measured": m, "error (measured - predicted)": e})
    return pd.DataFrame(rows)


def _buttons(model_id: str, recipe: Recipe) -> None:
    c1, c2, _ = st.columns([1, 1, 2])
    if c1.button("Open in Explore", key=B_OPEN, type="primary", icon=":material/tune:", width="stretch"):
        state.open_in_explore(recipe)
        st.switch_page("pages/explore.py")
    if c2.button("Pin to Compare", key=B_PIN, icon=":material/push_pin:", width="stretch"):
        st.toast(state.pin(model_id, recipe))
