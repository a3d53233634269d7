"""Explore's panels: loading the model, the measured result, the background-filled accuracy curve and
the charts.

A slider move measures the new recipe with its recovery and shows the cards; the one-shot accuracy beside
the recovered one (the same recipe without recovery: one more evaluation, 1.5 s on ResNet-56 here) is
measured last, once everything else is on screen (``complete_oneshot``), and one rerun shows it.

The metric cards never wait for a chart: the curve is a fragment that, on full reruns, only
draws points already measured, and on its own timer (``CURVE_TICK_S``) measures one missing
point per tick, nearest to the slider first, until the grid is complete; then it triggers one
full rerun, which stops the timer. Its points are ordinary cached results, so the fill is also a
prefetch: the slider's neighbouring stops are usually ready before the user gets there.

Yielding. A fragment run and the user's next full rerun share one script thread, and Streamlit
hands over only when the running script calls a Streamlit command. So every measurement here gets
a progress callback that writes its progress on screen: each write is such a call, and a pending
slider move interrupts the fill there (within one evaluation batch, BatchNorm re-estimation batch or
timing round, a fraction of a second even on ResNet-56) instead of after the whole point.
"""

from __future__ import annotations

import logging

import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.base.records import Progress

from . import cache, catalogue, runtime_panel, state, views
from .actions import finetune_progress

log = logging.getLogger("prunescope.app")
CURVE_TICK_S = 0.5
ALL_LAYERS = "All prunable layers"


def _chart(fig, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


def ensure_loaded(model_id: str, mode: str) -> None:
    """The first visit of a model in this process: say what is loading while it loads."""
    if cache.is_warm(model_id, mode):
        return
    spec = catalogue.spec(model_id)
    with st.spinner(
        f"Loading {spec.name}: weights, the test images, the dense model's own predictions and (with "
        "BatchNorm recovery) its statistics on the calibration images (once per server; a few seconds for a ResNet)…",
        show_time=True,
    ):
        cache.warm_up(model_id, mode)


def _on_screen(slot, label: str) -> Progress:
    """A progress callback that writes into ``slot``: each write is a point where Streamlit can hand
    the script thread to the user's next move (see the module docstring)."""
    bar = slot.progress(0.0, text=label)
    return lambda f, m: bar.progress(min(max(float(f), 0.0), 1.0), text=f"{label} — {m}")


def measure(model_id: str, recipe: Recipe, mode: str) -> dict:
    """The current recipe's result: instant when cached, else a progress bar naming what it measures.
    The bar's slot exists either way, so the elements below keep their places (an open expander stays open)."""
    slot = st.empty()
    hit = cache.peek(model_id, recipe, mode)
    if hit is not None:
        return hit
    if recipe.finetune is not None:
        res = cache.result(model_id, recipe, mode, progress=finetune_progress(slot.progress(0.0, "Fine-tuning…")))
    else:
        n = len(cache.workbench(model_id).eval_data(mode))
        label = f"Measuring {state.recipe_text(recipe)} on {catalogue.spec(model_id).name} ({n:,} images)"
        with runtime_panel.foreground():  # the background runtime worker waits while the user's move is measured
            res = cache.result(model_id, recipe, mode, progress=_on_screen(slot, label), oneshot=False)
    slot.empty()
    return res


def complete_oneshot(model_id: str, recipe: Recipe, mode: str, res: dict, slot) -> None:
    """Last on the page: the one-shot accuracy the card shows beside the recovered one, measured into
    ``slot`` (under the cards), then one rerun that shows it. The user's next move interrupts it like the
    curve fill (module docstring); the result stays cached either way, so it is measured at most once."""
    if not cache.oneshot_missing(recipe, res):
        return
    label = f"Measuring the one-shot accuracy (the same recipe without recovery) on {catalogue.spec(model_id).name}"
    done = cache.result(model_id, recipe, mode, progress=_on_screen(slot, label))
    slot.empty()
    if not cache.oneshot_missing(recipe, done):
        st.rerun()


def _fill_caption(n_done: int, todo: list[Recipe], background: bool, kind: str, seconds: float) -> str:
    if not todo:
        more = "."
    elif background:
        eta = len(todo) * seconds
        more = (
            f"; {len(todo)} more fill in in the background (about "
            f"{f'{eta / 60:.0f} min' if eta > 90 else f'{eta:.0f} s'}; your next move always comes first)."
        )
    else:
        more = "; move the slider to add points (no background fill on the full test set)."
    return f"Sparsity = fraction of {kind} removed. {n_done} point(s) measured{more} Band: 95 % CI of each point."


def accuracy_curve(model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    if recipe.prune.layer_sparsity:
        st.info(
            "The accuracy-vs-sparsity curve is hidden while per-layer ratios are set: it varies one sparsity "
            "for every layer, which is not this recipe.",
            icon=":material/info:",
        )
        return
    ss = st.session_state
    _, missing = cache.curve_frame(model_id, recipe, mode, frozenset(ss[state.CURVE_FAILED]))
    background = mode == "quick"  # a full-set point takes seconds to minutes: only visited points then
    kind = "channels" if recipe.prune.kind == "structured" else "weights"
    seconds = max(0.2, sum((res.get("seconds") or {}).values()))

    @st.fragment(run_every=CURVE_TICK_S if missing and background else None)
    def curve() -> None:
        timer_run = ss.get(state.CURVE_SEEN) == ss[state.FULL_RUNS]  # no full run since the last render
        ss[state.CURVE_SEEN] = ss[state.FULL_RUNS]
        df, todo = cache.curve_frame(model_id, recipe, mode, frozenset(ss[state.CURVE_FAILED]))
        # Draw first, then measure: the chart stays fresh (not greyed) while the next point computes;
        # the new point appears at the next tick.
        _chart(views.curve_figure(df, recipe, res), "curve")
        st.caption(_fill_caption(len(df), todo, background, kind, seconds))
        if not (timer_run and background):
            return
        if not todo:
            st.rerun()  # one full rerun registers the fragment without a timer
        slot = st.empty()
        try:
            cache.result(
                model_id,
                todo[0],
                mode,
                progress=_on_screen(slot, f"Background: measuring {todo[0].prune.sparsity:.0%}"),
            )
        except Exception:
            log.exception("curve point failed")
            ss[state.CURVE_FAILED].add(todo[0].to_json())
        slot.empty()

    curve()


def size_chart(model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    deploy = runtime_panel.deploy_bytes(model_id, recipe, mode)
    _chart(views.size_figure(model_id, recipe, res, deploy), "sizes")
    st.caption(
        "Hatched bars are estimates. Masking weights to zero never shrinks a file; a sparse or "
        "quantized format, or removing channels, does."
        + (
            f" The deployable file is what {deploy[0]} loads (download it from Export)."
            if deploy
            else " The deployable file of a deployment runtime (chosen above the cards) appears here once its "
            "measurement is in; Export builds any runtime's file, PyTorch's .pt2 included."
        )
    )


def latency_and_layers(model_id: str, recipe: Recipe, res: dict) -> None:
    """Latency next to MACs and the weight histogram; then, full width, sparsity per layer and the table."""
    table = cache.layer_frame(model_id, recipe.to_json())
    left, right = st.columns(2, gap="medium")
    with left:
        _chart(views.latency_figure(res), "latency")
        st.caption(
            f"Paired timing: this model and the dense one interleaved in the same window, batch "
            f"{res['latency_batch']}, {res['latency_threads']} thread(s), {res['latency_kernels']} kernels; "
            "bars are medians (IQR whiskers), and the speed-up on the card is the dense median over this one, the two "
            "bars here. MACs count zeroed weights too: dense kernels still multiply them."
        )
    with right:
        names = [ALL_LAYERS, *table["layer"]]
        if st.session_state.get(state.W_HIST_LAYER) not in names:
            st.session_state[state.W_HIST_LAYER] = ALL_LAYERS
        layer = st.selectbox("Weight histogram of", names, key=state.W_HIST_LAYER)
        hist, zeros = views.histogram_figure(model_id, recipe, None if layer == ALL_LAYERS else layer)
        _chart(hist, "histogram")
        st.caption(f"Exact zeros left out: {zeros['before']:,} before, {zeros['after']:,} after.")
    _chart(views.layers_figure(model_id, recipe), "layers")
    layer_table(table)


def layer_table(table) -> None:
    st.markdown("**Per-layer table**")
    structured = bool((table["shape"] != table["dense_shape"]).any())
    columns = (
        ["layer", "type", "dense_shape", "shape", "nonzero", "sparsity"]
        if structured
        else ["layer", "type", "shape", "nonzero", "dense_params", "sparsity"]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_order=columns,
        column_config={
            "layer": st.column_config.TextColumn("layer", width="medium"),
            "type": st.column_config.TextColumn("type", width="small"),
            "sparsity": st.column_config.ProgressColumn(
                "removed", format="percent", min_value=0, max_value=1, width="medium"
            ),
            "shape": st.column_config.TextColumn("shape now" if structured else "shape"),
            "dense_shape": st.column_config.TextColumn("dense shape"),
            "nonzero": st.column_config.NumberColumn("non-zero", format="localized"),
            "dense_params": st.column_config.NumberColumn("weights", format="localized"),
        },
    )
