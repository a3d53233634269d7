"""Sensitivity page panels: the analysis form, heatmap + table, and per-layer ratios for Explore."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core.base.recipe import CRITERIA, PruneSpec, Recipe
from compress_core.present import plots
from compress_core.study.sensitivity import DurationEstimate, estimate_duration

from . import cache, state
from .vocab import CRITERION_LABELS, RECOVERY_LABELS
from .widgets import recovery_radio

SPARSITY_CHOICES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
BIT_CHOICES = (1, 2, 3, 4, 6, 8)


def _pct(f: float) -> str:
    return f"{f:.0%}"


def form() -> dict | None:
    """The analysis the user asked for (kept in session state), or None before the first run."""
    with st.form("sensitivity_form", border=True):
        analysis = st.radio(
            "Analysis",
            ["sparsity", "bits"],
            key=state.SENS_KIND,
            horizontal=True,
            format_func=lambda a: "Prune one layer at a time" if a == "sparsity" else "Quantize one layer at a time",
        )
        c1, c2, c3, c4 = st.columns([2.2, 1, 1.4, 1.8])
        sparsities = c1.multiselect(
            "Sparsities", SPARSITY_CHOICES, default=[0.25, 0.5, 0.75, 0.9], key=state.SENS_SPARSITIES, format_func=_pct
        )
        kind = c2.radio("Pruning kind", ["unstructured", "structured"], key=state.SENS_PRUNE_KIND)
        criterion = c3.selectbox(
            "Criterion",
            list(CRITERIA),
            index=list(CRITERIA).index("l1"),
            key=state.SENS_CRITERION,
            format_func=lambda c: CRITERION_LABELS.get(c, c),
        )
        bits = c4.multiselect("Bit-widths", BIT_CHOICES, default=[8, 4, 2, 1], key=state.SENS_BITS)
        recovery = recovery_radio(
            state.SENS_RECOVERY,
            "Recovery after pruning each layer",
            help="Measure each layer's cost after the post-training recovery Explore applies (pruning analysis; "
            "the quantization analysis measures raw k-bit weights). The per-layer ratios sent to Explore keep it.",
        )
        st.caption(
            "Sparsity settings apply to the pruning analysis, bit-widths to the quantization analysis. "
            "Every other layer stays dense; results are cached per model and settings."
        )
        if st.form_submit_button("Analyse", type="primary", icon=":material/query_stats:"):
            if (analysis == "sparsity" and not sparsities) or (analysis == "bits" and not bits):
                st.warning("Pick at least one value to test.")
            else:
                st.session_state[state.SENS_PARAMS] = {
                    "analysis": analysis,
                    "prune_kind": kind,
                    "sparsities": tuple(sorted(sparsities)),
                    "bits": tuple(sorted(bits, reverse=True)),
                    "criterion": criterion,
                    "recovery": recovery if analysis == "sparsity" else "none",
                }
    return st.session_state.get(state.SENS_PARAMS)


def settings() -> dict:
    """The analysis the form shows now (its last submitted values, or its defaults), as ``form`` stores it."""
    ss = st.session_state
    analysis = ss.get(state.SENS_KIND, "sparsity")
    return {
        "analysis": analysis,
        "prune_kind": ss.get(state.SENS_PRUNE_KIND, "unstructured"),
        "sparsities": tuple(sorted(ss.get(state.SENS_SPARSITIES, (0.25, 0.5, 0.75, 0.9)))),
        "bits": tuple(sorted(ss.get(state.SENS_BITS, (8, 4, 2, 1)), reverse=True)),
        "criterion": ss.get(state.SENS_CRITERION, "l1"),
        "recovery": ss.get(state.SENS_RECOVERY, "none") if analysis == "sparsity" else "none",
    }


@st.cache_data(max_entries=32, show_spinner="Timing one layer to estimate the analysis…")
def _estimate(model_id: str, mode: str, params: tuple) -> DurationEstimate:
    p = dict(params)
    return estimate_duration(
        cache.workbench(model_id),
        p["analysis"],
        sparsities=p["sparsities"],
        bits=p["bits"],
        criterion=p["criterion"],
        kind=p["prune_kind"],
        mode=mode,
        recovery=p["recovery"],
    )


def duration(model_id: str, mode: str, params: dict) -> None:
    """How long these settings take, measured (one layer timed, multiplied), before anything runs."""
    if (params["analysis"] == "sparsity" and not params["sparsities"]) or (
        params["analysis"] == "bits" and not params["bits"]
    ):
        return
    est = _estimate(model_id, mode, tuple(sorted(params.items())))
    st.info(
        f"**This analysis takes {est.text()}**, on the {mode} evaluation. A progress bar shows the time left "
        "while it runs; results are cached, so running it again is instant.",
        icon=":material/timer:",
    )


def results(model_id: str, mode: str, params: dict) -> pd.DataFrame:

    df = cache.sensitivity_frame(
        model_id,
        params["analysis"],
        params["prune_kind"],
        params["sparsities"],
        params["bits"],
        params["criterion"],
        mode,
        params.get("recovery", "none"),
    )
    x = "sparsity" if params["analysis"] == "sparsity" else "bits"
    what = f"{params['prune_kind']} {params['criterion']}" if x == "sparsity" else "symmetric per-channel"
    if x == "sparsity" and params.get("recovery", "none") != "none":
        what += f", after {RECOVERY_LABELS[params['recovery']].lower()}"
    st.plotly_chart(
        plots.sensitivity_heatmap(df, x=x, title=f"Accuracy drop when one layer alone is compressed ({what})"),
        width="stretch",
        key="sens_heatmap",
    )
    with st.expander("Table", expanded=False):
        st.dataframe(
            df,
            hide_index=True,
            width="stretch",
            column_config={
                "accuracy": st.column_config.NumberColumn(format="percent"),
                "accuracy_drop": st.column_config.NumberColumn("accuracy drop", format="percent"),
                "agreement": st.column_config.NumberColumn(format="percent"),
                "sparsity": st.column_config.NumberColumn(format="percent"),
            },
        )
    return df


def ratios(model_id: str, df: pd.DataFrame, params: dict) -> None:
    """Per-layer sparsities within an accuracy budget, and the button that sends them to Explore."""
    from compress_core.study.sensitivity import ratios_from_sensitivity

    st.subheader("Per-layer ratios")
    budget_pp = st.slider(
        "Accuracy budget per layer (points)",
        0.0,
        5.0,
        1.0,
        step=0.1,
        key=state.SENS_MAX_DROP,
        format="%.1f pp",
        help="For each layer, the largest tested sparsity whose drop stays within this budget.",
    )
    chosen = ratios_from_sensitivity(df, max_drop=budget_pp / 100)
    table = pd.DataFrame({"layer": list(chosen), "sparsity": list(chosen.values())})
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"sparsity": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)},
    )
    st.caption(
        "Layers are measured one at a time: pruned together, their losses add up, so check the "
        "combined accuracy in Explore."
    )
    if st.button("Use as per-layer ratios in Explore", type="primary", icon=":material/arrow_forward:"):
        layers = list(cache.layer_frame(model_id, Recipe().to_json())["layer"])
        recipe = to_recipe(state.current_recipe(), chosen, params["prune_kind"], params["criterion"], layers)
        if recipe.compressed:
            recipe = recipe.with_recovery(params.get("recovery", "none"))
        state.open_in_explore(recipe, model_id)
        st.switch_page("pages/explore.py", query_params=state.explore_link())


def to_recipe(base: Recipe, chosen: dict[str, float], kind: str, criterion: str, all_layers: list[str]) -> Recipe:
    """``base``'s quantization with these per-layer sparsities; layers not measured stay dense."""
    skip = tuple(n for n in all_layers if n not in chosen)
    prune = PruneSpec(
        kind=kind,
        criterion=criterion,
        scope="layer",
        sparsity=base.prune.sparsity,
        skip=skip,
        layer_sparsity=tuple(chosen.items()),
        seed=base.prune.seed,
    )
    return Recipe(prune=prune, quant=base.quant)
