"""Explore's action row: pin for comparison, reset to dense, copy the link, download the report,
re-measure a noisy latency; and recovery fine-tuning below it."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from compress_core.base import timing
from compress_core.base.recipe import FinetuneSpec, Recipe
from compress_core.base.records import Progress

from . import cache, report_panel, share, state


def finetune_progress(bar) -> Progress:
    """A ``Progress`` callback that moves ``bar`` (an ``st.progress``) while a recipe fine-tunes."""
    return lambda f, m: bar.progress(min(max(float(f), 0.0), 1.0), text=f"Fine-tuning — {m}")


def actions(model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    """One row of buttons, then recovery fine-tuning."""
    pin, reset, link, rep, again = st.columns([1.1, 1, 1, 1.3, 1.2], gap="small", vertical_alignment="center")
    if pin.button("Pin for comparison", key=state.B_PIN, icon=":material/push_pin:", width="stretch"):
        st.toast(state.pin(model_id, recipe))
    reset.button(
        "Reset to dense",
        key=state.B_RESET_DENSE,
        on_click=state.reset_recipe,
        icon=":material/restart_alt:",
        width="stretch",
        disabled=recipe.is_dense,
        help="Back to the dense fp32 model: no pruning, no quantization, no fine-tuning, no per-layer ratios.",
    )
    with link:
        share.copy_link_button()
    with rep:
        report_panel.download_button(
            "explore",
            report_panel.explore_html,
            model_id,
            recipe,
            mode,
            file_name=f"prunescope-{model_id}-{report_panel.slug(state.recipe_text(recipe))}.html",
        )
    remeasure_button(again, model_id, recipe, mode, res)
    recovery(model_id, recipe, mode, res)


def remeasure_button(col, model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    """Time this recipe against dense again; the better-quality measurement is kept (and stored)."""
    noisy = bool(res.get("latency_noisy"))
    clicked = col.button(
        "Re-measure latency",
        key=state.B_REMEASURE,
        icon=":material/timer:",
        width="stretch",
        type="primary" if noisy else "secondary",
        disabled=res.get("latency_ms_p50") is None,
        help="Time this model and the dense one again, interleaved; the better-quality of the "
        "two measurements is kept (quiet beats noisy, then the smaller spread).",
    )
    if not clicked:
        return
    with st.spinner("Timing this model against the dense one again…"):
        new = cache.remeasure(model_id, recipe, mode)
    kept = any(new.get(f) != res.get(f) for f in timing.LATENCY_FIELDS)
    spread = new.get("speedup_spread")
    verdict = "noisy" if new.get("latency_noisy") else "quiet"
    st.toast(
        f"Re-measured: {new['speedup']:.2f}× ± {spread:.0%} ({verdict}); kept."
        if kept
        else "Re-measured, but the new timing was not better; the earlier one is kept.",
        icon=":material/timer:",
    )
    st.rerun()


def recovery(model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    if recipe.finetune is not None:
        before = cache.result(model_id, replace(recipe, finetune=None), mode)
        c1, c2 = st.columns([3, 1])
        how = f"{recipe.finetune.epochs:g} epoch(s){', distilled' if recipe.finetune.distill else ''}"
        c1.success(
            f"Fine-tuned ({how}): accuracy {before['accuracy']:.1%} before → **{res['accuracy']:.1%} after**.",
            icon=":material/healing:",
        )
        c2.button("Remove fine-tuning", key=state.B_CLEAR_FINETUNE, on_click=state.clear_finetune, width="stretch")
        return
    with st.expander("Recover accuracy (fine-tune the pruned model)", icon=":material/healing:"):
        c1, c2, c3 = st.columns(3)
        epochs = c1.select_slider("Epochs", [0.25, 0.5, 1.0, 2.0, 3.0], value=1.0, key=state.W_FT_EPOCHS)
        samples = c2.number_input("Images per epoch (0 = all)", 0, 100_000, 2000, step=500, key=state.W_FT_SAMPLES)
        distill = c3.toggle("Distil from the dense model", value=False, key=state.W_FT_DISTILL)
        st.caption(
            "Trains on the training split (never the test images), keeping pruned weights at zero. "
            "Cached like any result."
        )
        if st.button("Recover accuracy", key=state.B_RECOVER, type="primary", disabled=recipe.is_dense):
            target = replace(
                recipe, finetune=FinetuneSpec(epochs=float(epochs), max_samples=int(samples), distill=bool(distill))
            )
            cache.result(model_id, target, mode, progress=finetune_progress(st.progress(0.0, text="Fine-tuning…")))
            state.set_recipe(target)
            st.rerun()
