"""Explore's panels: the measured result, the background-filled accuracy curve, the charts, recovery
fine-tuning, pinning and the per-layer-ratios notice.

The metric cards never wait for a chart: the curve is a fragment that, on full reruns, only
draws points already measured, and on its own timer (``CURVE_TICK_S``) measures one missing
point per tick, nearest to the slider first, until the grid is complete; then it triggers one
full rerun, which stops the timer. Its points are ordinary cached results, so the fill is also a
prefetch: the slider's neighbouring stops are usually ready before the user gets there.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd
import streamlit as st

from compress_core import inspect, plots
from compress_core.recipe import FinetuneSpec, Recipe
from compress_core.records import Progress

from . import cache, state

log = logging.getLogger("prunescope.app")
CURVE_TICK_S = 0.5
ALL_LAYERS = "All prunable layers"


def _chart(fig, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


def accuracy_curve(model_id: str, recipe: Recipe, mode: str, dense_accuracy: float) -> None:
    if recipe.prune.layer_sparsity:
        st.info("The accuracy-vs-sparsity curve is hidden while per-layer ratios are set: the slider then "
                "only moves layers without a ratio.", icon=":material/info:")
        return
    ss = st.session_state
    _, missing = cache.curve_frame(model_id, recipe, mode, frozenset(ss[state.CURVE_FAILED]))
    background = mode == "quick"  # a full-set point takes seconds to minutes: only visited points then
    kind = "channels" if recipe.prune.kind == "structured" else "weights"
    title = f"Accuracy vs sparsity · {recipe.prune.kind} {recipe.prune.criterion}, " \
            f"{recipe.quant.bits}-bit{' int8' if recipe.quant.int8 else ''}"

    @st.fragment(run_every=CURVE_TICK_S if missing and background else None)
    def curve() -> None:
        timer_run = ss.get(state.CURVE_SEEN) == ss[state.FULL_RUNS]  # no full run since the last render
        ss[state.CURVE_SEEN] = ss[state.FULL_RUNS]
        df, todo = cache.curve_frame(model_id, recipe, mode, frozenset(ss[state.CURVE_FAILED]))
        # Draw first, then measure: the chart stays fresh (not greyed) while the next point computes;
        # the new point appears at the next tick.
        _chart(plots.accuracy_curve(df, recipe.prune.sparsity, dense_accuracy, title), "curve")
        more = ("; the rest fill in in the background." if background else
                "; move the slider to add points (no background fill on the full test set).")
        st.caption(f"Sparsity = fraction of {kind} removed. {len(df)} point(s) measured"
                   + (more if todo else ".") + " Band: 95 % CI of each point.")
        if not (timer_run and background):
            return
        if not todo:
            st.rerun()  # one full rerun registers the fragment without a timer
        try:
            cache.result(model_id, todo[0], mode)
        except Exception:  # noqa: BLE001 - a point that cannot be built is skipped, not retried
            log.exception("curve point failed")
            ss[state.CURVE_FAILED].add(todo[0].to_json())

    curve()


def layer_ratios_notice(recipe: Recipe) -> None:
    """While per-layer ratios (from Sensitivity) are set: say so, with a button that clears them."""
    if not recipe.prune.layer_sparsity:
        return
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.info(f"Per-layer ratios are set for {len(recipe.prune.layer_sparsity)} layer(s) (from Sensitivity); "
            "the slider moves only the other layers.", icon=":material/layers:")
    c2.button("Clear per-layer ratios", key=state.B_CLEAR_RATIOS, on_click=state.clear_layer_ratios,
              width="stretch")


def measure(model_id: str, recipe: Recipe, mode: str) -> dict:
    """The current recipe's result: instant when cached, else a spinner (or a progress bar for fine-tuning)."""
    hit = cache.peek(model_id, recipe, mode)
    if hit is not None:
        return hit
    if recipe.finetune is not None:
        bar = st.progress(0.0, text="Fine-tuning…")
        res = cache.result(model_id, recipe, mode, progress=_finetune_progress(bar))
        bar.empty()
        return res
    with st.spinner("Measuring this recipe…"):
        return cache.result(model_id, recipe, mode)


def _finetune_progress(bar) -> Progress:
    """A ``Progress`` callback that moves ``bar`` (an ``st.progress``) while a recipe fine-tunes."""
    return lambda f, m: bar.progress(min(max(float(f), 0.0), 1.0), text=f"Fine-tuning — {m}")


def size_chart(model_id: str, recipe: Recipe, res: dict) -> None:
    masked = cache.masked_size_bytes(model_id, recipe.to_json())
    _chart(plots.size_breakdown(inspect.size_breakdown(res, masked)), "sizes")
    st.caption("Hatched bars are estimates. Masking weights to zero never shrinks a file; a sparse or "
               "quantized format, or removing channels, does.")


def _latency_frame(res: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"variant": "dense fp32", "latency_ms_p50": res.get("dense_latency_ms_p50"), "latency_ms_iqr": 0.0,
         "macs": res["dense_macs"], "kernels": "fp32"},
        {"variant": "this recipe", "latency_ms_p50": res.get("latency_ms_p50"),
         "latency_ms_iqr": res.get("latency_ms_iqr") or 0.0, "macs": res["macs"], "kernels": res["latency_kernels"]},
    ])


def latency_and_layers(model_id: str, recipe: Recipe, res: dict) -> None:
    table = cache.layer_frame(model_id, recipe.to_json())
    left, right = st.columns(2, gap="medium")
    with left:
        _chart(plots.latency_macs(_latency_frame(res)), "latency")
        st.caption(f"torch.utils.benchmark, batch {res['latency_batch']}, {res['latency_threads']} thread(s), "
                   f"{res['latency_kernels']} kernels. MACs count zeroed weights too: dense kernels still "
                   "multiply them.")
    with right:
        _chart(plots.layer_sparsity(table), "layers")
    left, right = st.columns(2, gap="medium")
    with left:
        names = [ALL_LAYERS, *table["layer"]]
        if st.session_state.get(state.W_HIST_LAYER) not in names:
            st.session_state[state.W_HIST_LAYER] = ALL_LAYERS
        layer = st.selectbox("Weight histogram of", names, key=state.W_HIST_LAYER)
        hist, zeros = cache.histogram_frame(model_id, recipe.to_json(), None if layer == ALL_LAYERS else layer)
        _chart(plots.weight_histogram(hist), "histogram")
        st.caption(f"Exact zeros left out: {zeros['before']:,} before, {zeros['after']:,} after.")
    with right:
        st.markdown("**Per-layer table**")
        structured = bool((table["shape"] != table["dense_shape"]).any())
        columns = ["layer", "type", "dense_shape", "shape", "nonzero", "sparsity"] if structured else \
            ["layer", "type", "shape", "nonzero", "dense_params", "sparsity"]
        st.dataframe(table, hide_index=True, width="stretch", column_order=columns, column_config={
            "sparsity": st.column_config.ProgressColumn("removed", format="percent", min_value=0, max_value=1),
            "shape": st.column_config.TextColumn("shape now" if structured else "shape"),
            "dense_shape": st.column_config.TextColumn("dense shape"),
            "nonzero": st.column_config.NumberColumn("non-zero", format="localized"),
            "dense_params": st.column_config.NumberColumn("weights", format="localized")})


def actions(model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    """Pin for comparison, and recover accuracy by fine-tuning."""
    pin_col, ft_col = st.columns([1, 3], gap="medium")
    if pin_col.button("Pin for comparison", key=state.B_PIN, icon=":material/push_pin:", width="stretch"):
        st.toast(state.pin(model_id, recipe))
    with ft_col:
        recovery(model_id, recipe, mode, res)


def recovery(model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    if recipe.finetune is not None:
        before = cache.result(model_id, replace(recipe, finetune=None), mode)
        c1, c2 = st.columns([3, 1])
        how = f"{recipe.finetune.epochs:g} epoch(s){', distilled' if recipe.finetune.distill else ''}"
        c1.success(f"Fine-tuned ({how}): "
                   f"accuracy {before['accuracy']:.1%} before → **{res['accuracy']:.1%} after**.",
                   icon=":material/healing:")
        c2.button("Remove fine-tuning", key=state.B_CLEAR_FINETUNE, on_click=state.clear_finetune, width="stretch")
        return
    with st.expander("Recover accuracy (fine-tune the pruned model)", icon=":material/healing:"):
        c1, c2, c3 = st.columns(3)
        epochs = c1.select_slider("Epochs", [0.25, 0.5, 1.0, 2.0, 3.0], value=1.0, key=state.W_FT_EPOCHS)
        samples = c2.number_input("Images per epoch (0 = all)", 0, 100_000, 2000, step=500, key=state.W_FT_SAMPLES)
        distill = c3.toggle("Distil from the dense model", value=False, key=state.W_FT_DISTILL)
        st.caption("Trains on the training split (never the test images), keeping pruned weights at zero. "
                   "Cached like any result.")
        if st.button("Recover accuracy", key=state.B_RECOVER, type="primary", disabled=recipe.is_dense):
            target = replace(recipe, finetune=FinetuneSpec(epochs=float(epochs), max_samples=int(samples),
                                                           distill=bool(distill)))
            cache.result(model_id, target, mode, progress=_finetune_progress(st.progress(0.0, text="Fine-tuning…")))
            state.set_recipe(target)
            st.rerun()
