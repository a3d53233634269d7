"""Widgets: each owns its session-state key (see ``state``) and returns plain values.

The sidebar (model picker, upload box, evaluation size), the recovery choice the other pages share, the
metric cards and the notes on what was simulated. Explore's recipe controls are in ``recipe_controls``,
the words for the core's registered choices in ``vocab``.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from compress_core.base.paths import cache_dir, data_dir, downloads_allowed
from compress_core.base.recipe import Recipe
from compress_core.base.records import EVAL_MODES, dense_file_bytes, size_is_estimate
from compress_core.present.headline import headline, speed_words
from compress_core.present.plots import human_bytes

from . import cache, catalogue, state, upload_box
from .vocab import RECOVERY_LABELS


def recovery_levels(model_id: str) -> tuple[str, ...]:
    """The recovery levels this model can use; an uploaded compiled graph (not prunable) has none to offer."""
    return cache.recovery_levels(model_id) if catalogue.prunable(model_id) else ("none",)


def default_recovery(model_id: str) -> str:
    return cache.default_recovery(model_id) if catalogue.prunable(model_id) else "none"


def recovery_radio(key: str, label: str, help: str) -> str:
    """A recovery choice for the current model (Sensitivity, Sweep), starting at the model's default and put
    back to it when the model cannot use the value (``bn`` after a switch to a LeNet)."""
    model_id = state.model_id()
    levels = recovery_levels(model_id)
    if st.session_state.get(key) not in levels:
        st.session_state[key] = default_recovery(model_id)
    return st.radio(label, list(levels), key=key, horizontal=True, format_func=lambda r: RECOVERY_LABELS[r], help=help)


# -- sidebar ------------------------------------------------------------------------------------
_LOGO_SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' width='232' height='48' viewBox='0 0 232 48'>"
    "<rect x='2' y='8' width='32' height='32' rx='8' fill='#2563eb'/>"
    "<path d='M10 31 L18 17 L26 31' stroke='white' stroke-width='3' fill='none' stroke-linecap='round'/>"
    "<circle cx='18' cy='17' r='3' fill='white'/>"
    "<text x='44' y='33' font-family='Source Sans Pro, Helvetica, Arial, sans-serif' font-size='24' "
    "font-weight='700' fill='#1f2937'>PruneScope</text></svg>"
)
LOGO = "data:image/svg+xml;utf8," + _LOGO_SVG.replace("#", "%23").replace("<", "%3C").replace(">", "%3E")


def missing_weights_message(model_id: str) -> str:
    if catalogue.is_upload(model_id):
        return f"The uploaded model {model_id} is no longer loaded: upload the file again in the sidebar."
    spec = catalogue.spec(model_id)
    root = data_dir()
    where = f"COMPRESS_DATA_DIR ({root})" if root else "a folder named by COMPRESS_DATA_DIR (not set)"
    fetch = (
        "They will download once, sha256-checked, when you open a page."
        if downloads_allowed() and spec.weights_url
        else "Downloads are switched off (PRUNESCOPE_OFFLINE=1), so copy the file by hand."
    )
    return (
        f"The weights of {spec.name} are not on this machine: put `{spec.weights_file}` under {where} "
        f"or under `{cache_dir()}`, laid out like shared/data. {fetch}"
    )


def sidebar() -> tuple[str, str, bool]:
    """Model picker with its facts, and the evaluation size. Returns (model_id, eval mode, usable)."""
    st.logo(LOGO, size="large")
    upload_box.drop_if_evicted()
    with st.sidebar:
        st.selectbox(
            "Model",
            options=catalogue.choices(upload_box.session_ids()),
            key=state.MODEL,
            format_func=catalogue.label,
            on_change=state.on_model_change,
            help="Every page works on this model.",
        )
        model_id = state.model_id()
        spec = catalogue.spec(model_id)
        ref = f"{spec.reference_accuracy:.2%}" if spec.reference_accuracy is not None else "n/a"
        st.caption(
            f"**{catalogue.dataset_name(spec.dataset)}** · {spec.params:,} parameters · reference top-1 **{ref}**",
            help=spec.reference_source,
        )
        upload_box.upload_box()
        usable = catalogue.usable(model_id)
        if not usable:
            st.warning(missing_weights_message(model_id), icon=":material/download_for_offline:")
            usable = downloads_allowed() and bool(spec.weights_url) and not catalogue.is_upload(model_id)
        st.radio(
            "Evaluation",
            EVAL_MODES,
            key=state.EVAL,
            horizontal=True,
            format_func=lambda m: "Quick · 1,000 images" if m == "quick" else "Full test set",
            help="Quick: a fixed stratified subset (accuracy shown with its 95 % CI). Full: every test image, slower.",
        )
        st.caption(
            f"Latency on {cache.startup_threads()} torch thread(s), batch {cache.LATENCY_BATCH} · "
            "results cached per recipe"
        )
    return model_id, state.eval_mode(), usable


# -- results ------------------------------------------------------------------------------------
def _pct_change(new: float | None, old: float | None) -> str | None:
    if new is None or old in (None, 0):
        return None
    change = (new / old - 1) * 100
    return "same as dense" if abs(change) < 0.5 else f"{change:+.0f} % vs dense"


def _delta_style(delta: str | None, better: str = "inverse") -> dict:
    """Colour and arrow for a delta: neutral (no arrow) when it is the same as dense."""
    same = delta in (None, "same as dense")
    return {"delta_color": "off" if same else better, "delta_arrow": "off" if same else "auto"}


def metric_cards(res: dict, latency: Callable[[], None] | None = None) -> None:
    """Accuracy (with CI), non-zero parameters, file size and CPU latency, each against the dense model:
    the same model, measured the same way (same test images, same file format, same timing window).
    ``latency`` draws the fourth card instead (Explore: the selected runtime's, ``runtime_panel``)."""
    a, p, s, t = st.columns(4)
    with a.container(border=True):
        drop_pp = (res["accuracy"] - res["dense_accuracy"]) * 100
        delta: str | None = "same as dense" if abs(drop_pp) < 0.05 else f"{drop_pp:+.1f} pp vs dense"
        st.metric("Top-1 accuracy", f"{res['accuracy'] * 100:.1f} %", delta, **_delta_style(delta, "normal"))
        agree = f" · agrees with dense on {res['agreement']:.1%}" if res.get("agreement") is not None else ""
        recovered = recovery_text(res)
        if recovered:
            st.markdown(recovered)
        st.caption(
            f"95 % CI {res['accuracy_ci_low'] * 100:.1f}–{res['accuracy_ci_high'] * 100:.1f} % · "
            f"n = {res['eval_samples']:,}{agree}"
        )
    with p.container(border=True):
        delta = _pct_change(res["params_nonzero"], res["dense_params"])
        st.metric("Non-zero parameters", f"{res['params_nonzero']:,}", delta, **_delta_style(delta))
        st.caption(f"of {res['params_total']:,} stored · dense {res['dense_params']:,}")
    with s.container(border=True):
        _size_card(res)
    with t.container(border=True):
        if latency is None:
            latency_card(res)
        else:
            latency()


def recovery_text(res: dict) -> str:
    """ "one-shot 25.4 % → recovered 56.6 % (BatchNorm re-estimation, 0.7 s)", or "" without recovery.
    A recovery that lowered accuracy says so."""
    oneshot = res.get("accuracy_oneshot")
    level = (res.get("recipe") or {}).get("recovery", "none")
    if oneshot is None or level == "none":
        return ""
    how = RECOVERY_LABELS.get(level, level)
    secs = f", {res['recovery_s']:.1f} s" if res.get("recovery_s") is not None else ""
    text = f"one-shot {oneshot * 100:.1f} % → recovered **{res['accuracy'] * 100:.1f} %** ({how}{secs})"
    if res["accuracy"] < oneshot:
        text += f" · :orange[recovery lowered accuracy by {(oneshot - res['accuracy']) * 100:.1f} pp]"
    return text


def _size_card(res: dict) -> None:
    estimated = size_is_estimate(res.get("size_method"))
    dense = dense_file_bytes(res)
    delta = _pct_change(res["size_bytes"], dense)
    st.metric(
        "File size" + (" (estimated)" if estimated else ""),
        human_bytes(res["size_bytes"]),
        delta,
        **_delta_style(delta),
    )
    ratio = dense / res["size_bytes"]
    vs = "dense" if abs(ratio - 1) < 0.005 else f"{ratio:.1f}× smaller than dense"
    method = f" · {res['size_method']}" if estimated else ""
    st.caption(
        f"{vs} ({human_bytes(dense)}, same format){method} · fp32 torch.save file: "
        f"{human_bytes(res['dense_size_bytes'])}"
    )


def speed_text(res: dict) -> str:
    """ "1.20× faster: dense 2.34 ms ÷ 1.95 ms" (the headline's, from the numbers on the card), or ""."""
    return headline(res).speed_text()


def _latency_delta_style(delta: str | None, speedup: float | None, noisy: bool) -> dict:
    """Green for faster, red for slower, no arrow (the words say which way); grey when noisy or the same."""
    if noisy or delta in (None, "same as dense") or speedup is None:
        return _delta_style(None)
    return {"delta_color": "normal" if speedup > 1 else "inverse", "delta_arrow": "off"}


def latency_card(res: dict, title: str = "", note: str = "") -> None:
    """The latency card of ``res`` (an eager or a runtime result: the same keys); ``note`` goes under it.
    Every number on it is the headline's (``compress_core.present.headline``): the speed-up in the delta is
    the dense median over this median, the two numbers the caption shows; the title names the runtime."""
    h = headline(res)
    speed = speed_words(h.speedup)
    delta: str | None = (f"{speed} vs dense" if speed != "same as dense" else speed) if speed else None
    if h.noisy:
        delta = f"noisy · {delta}" if delta else "noisy"
    st.metric(
        title or f"Latency p50 · {h.runtime_label}",
        f"{h.latency_ms:.3g} ms" if h.latency_ms is not None else "not measured",
        delta,
        **_latency_delta_style(delta, h.speedup, h.noisy),
    )
    spread = res.get("speedup_spread")
    spread_text = f" · rounds agree ± {spread:.0%}" if spread is not None and h.speedup is not None else ""
    dense = f"dense {h.dense_latency_ms:.3g} ms in the same window{spread_text} · " if h.dense_latency_ms else ""
    st.caption(f"{dense}{h.where()} · {h.kernels}")
    if h.noisy:
        st.caption(
            f":material/warning: **Noisy:** {h.noisy_reason or 'see the spread'}. "
            "Re-measure below when the machine is quieter."
        )
    if note:
        st.caption(note)


def honesty_notes(res: dict) -> None:
    """Everything simulated or estimated in this result, on screen."""
    items = list(res.get("simulated") or [])
    if size_is_estimate(res.get("size_method")):
        items.append(f"file size: {res['size_method']}")
    if not items:
        st.caption(":material/verified: Every number above is measured on this machine; nothing is simulated.")
        return
    st.caption(":material/info: **Simulated or estimated:** " + " · ".join(items))


def recipe_summary(recipe: Recipe, model_id: str, res: dict | None = None) -> None:
    spec = catalogue.spec(model_id)
    where = f" · eval set `{res['eval_set']}`" if res else ""
    st.caption(f"**{spec.name}** · recipe **{state.recipe_text(recipe)}**{where}")
