"""Widgets: each owns its session-state key (see ``state``) and returns plain values.

The sidebar (model picker, upload box, evaluation size), Explore's recipe controls, the metric cards
and the notes on what was simulated, and the labels the other panels share.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from compress_core.base.paths import cache_dir, data_dir, downloads_allowed
from compress_core.base.recipe import BITS, CRITERIA, GRANULARITIES, INT8_MODES, ROUND_TO, SCHEMES, SCOPES, Recipe
from compress_core.base.records import EVAL_MODES, size_is_estimate
from compress_core.engine.recover import BN_SAMPLES
from compress_core.present.plots import human_bytes

from . import cache, catalogue, state, upload_box

KIND_LABELS = {"unstructured": "Unstructured (weights)", "structured": "Structured (channels)", "none": "None"}
CRITERION_LABELS = {
    "random": "Random (baseline)",
    "l1": "Magnitude |w| (L1)",
    "l2": "Magnitude w² (L2)",
    "taylor": "Gradient (Taylor |w·∂L/∂w|)",
    "activation": "Activation (|w|·‖x‖)",
    "entropy": "Entropy of activations",
}
RECOVERY_LABELS = {
    "none": "None (one-shot)",
    "bn": "BatchNorm re-estimation",
    "reconstruct": "Layer-wise reconstruction",
}
RECOVERY_HELP = (
    f"What a deployment pipeline does before it judges a compressed model, on {BN_SAMPLES:,} training images "
    "(never test images), seeded. BatchNorm: re-estimate the BN statistics (about 1-1.5 s on the CIFAR ResNets "
    "here). "
    "Reconstruction: re-fit each compressed layer to the dense model's outputs by least squares "
    "(SparseGPT/OBC-style for pruned weights, GPTQ rounding for k-bit weights, ThiNet-style re-fits "
    "after removed channels, bias correction); 3-5 s on ResNet-20, under 1 s on the LeNets. The default is the "
    "strongest level that keeps a slider move near 1.5 s: BatchNorm for the ResNets, reconstruction for "
    "the LeNets (they have no BatchNorm). The accuracy card shows the one-shot number beside the recovered one "
    "(measured right after the cards)."
)
# Measured on ResNet-20 and LeNet-5, quick evaluation (1,000 images): benchmarks/RESULTS.md section 12.
STRUCTURED_DEFAULTS_WHY = (
    "Structured defaults: **per-layer scope, inner channels only** (residual streams kept). Measured at 30 % "
    "with BatchNorm recovery on ResNet-20: 83.3 % top-1 this way, 80.2 % with global scope, 56.4 % when the "
    "residual streams are pruned too; on LeNet-5 at 50 % with reconstruction, 97.3 % per layer vs 96.8 % global. "
    "Global scope never takes more than 80 % of a layer's channels. Change them under Scope and Details."
)
SCOPE_LABELS = {"global": "Global", "layer": "Per layer"}


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


def bits_label(bits: int) -> str:
    return {32: "32 · fp32", 16: "16 · fp16", 1: "1 · sign"}.get(bits, f"{bits}-bit")


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


# -- Explore controls ---------------------------------------------------------------------------
def recipe_controls(slider_layers: int | None = None, recovery_levels: tuple[str, ...] = ("none",)):
    """Explore's recipe widgets (values live in ``state.W_*``; read them with ``state.recipe_from_widgets``).

    ``slider_layers``: how many layers the sparsity still moves (None: all prunable layers); at 0 the
    slider is switched off; ``recovery_levels``: the recovery options this model can use. Returns the
    slot under the slider where ``knob_note`` says what it did."""
    ss = st.session_state
    if not catalogue.prunable(state.model_id()):
        st.info(
            "This uploaded model is a compiled graph (TorchScript or torch.export) that matches no zoo "
            "architecture: PruneScope can only evaluate it as uploaded (dense, fp32). Pruning and quantization "
            "need nn.Conv2d/nn.Linear modules; upload its state_dict to compress it.",
            icon=":material/lock:",
        )
    with st.container(border=True):
        left, right = st.columns(2, gap="large")
        off = slider_layers == 0
        left.slider(
            "Sparsity" + (" (off: every layer has its own ratio)" if off else ""),
            0,
            state.SPARSITY_MAX_PCT,
            step=5,
            key=state.W_SPARSITY,
            format="%d%%",
            disabled=off,
            help="Every prunable layer has a per-layer ratio (from Sensitivity), so there is nothing left "
            "for this slider to move: clear the ratios to use it."
            if off
            else "Fraction of weights (unstructured) or channels (structured) removed from the prunable "
            "layers; the first conv and the classifier stay dense unless per-layer ratios say otherwise. "
            "The line under the slider says what that fraction removed from this model.",
        )
        knob = left.empty()
        right.select_slider(
            "Weight bit-width",
            options=list(BITS),
            key=state.W_BITS,
            format_func=bits_label,
            help="1 = sign × scale, 2–8 = fixed point (simulated on fp32 kernels), 16 = fp16, 32 = the original fp32.",
        )
        right.radio(
            "Recovery",
            list(recovery_levels),
            key=state.W_RECOVERY,
            horizontal=True,
            format_func=lambda r: RECOVERY_LABELS[r],
            help=RECOVERY_HELP
            + (
                ""
                if "bn" in recovery_levels
                else " This model has no BatchNorm, so BatchNorm re-estimation is not offered."
            ),
        )
        c1, c2, c3, c4 = st.columns([1.5, 1.2, 0.9, 1.2], gap="medium")
        c1.radio(
            "Pruning kind",
            ["unstructured", "structured"],
            key=state.W_KIND,
            horizontal=True,
            on_change=state.on_kind_change,
            format_func=lambda k: KIND_LABELS[k],
            help="Unstructured zeros single weights: high compression, same speed on stock kernels. "
            "Structured removes whole channels: smaller dense layers, real speed-up, more accuracy loss.",
        )
        c2.selectbox(
            "Importance criterion",
            list(CRITERIA),
            key=state.W_CRITERION,
            format_func=lambda c: CRITERION_LABELS.get(c, c),
        )
        c3.radio(
            "Scope",
            list(SCOPES),
            key=state.W_SCOPE,
            horizontal=True,
            format_func=lambda s: SCOPE_LABELS[s],
            help="Global: one threshold over all layers. Per layer: the same fraction in every layer.",
        )
        eight = ss[state.W_BITS] == 8
        if not eight and ss.get(state.W_INT8):
            ss[state.W_INT8] = False  # int8 kernels need 8-bit weights
        c4.toggle(
            "Real int8 kernels",
            key=state.W_INT8,
            disabled=not eight,
            help="Run on PyTorch's int8 CPU kernels (x86/fbgemm) instead of simulating 8-bit weights on "
            "fp32 kernels. Only with 8-bit weights.",
        )
        c4.caption(
            "Measured on int8 kernels."
            if ss[state.W_INT8]
            else ("8-bit simulated on fp32 kernels." if eight else "Set the bit-width to 8 to enable.")
        )
        if ss[state.W_KIND] == "structured":
            st.caption(STRUCTURED_DEFAULTS_WHY)
        with st.expander(
            "Details: quantization scheme, granularity, int8 backend, residual streams, channel alignment"
        ):
            d1, d2, d3, d4 = st.columns(4)
            d1.radio(
                "Scheme",
                list(SCHEMES),
                key=state.W_SCHEME,
                horizontal=True,
                help='Symmetric: zero point 0. Asymmetric: min/max range ("dynamic range"). kmeans: weight '
                "sharing (Deep Compression, palettization): 2^bits shared values per layer or channel, found by "
                "k-means; the file stores packed indices plus the codebook.",
            )
            d2.radio(
                "Granularity",
                list(GRANULARITIES),
                key=state.W_GRANULARITY,
                horizontal=True,
                format_func=lambda g: g.replace("_", "-"),
                help="One scale per output channel, or per tensor.",
            )
            d3.selectbox(
                "int8 backend",
                list(INT8_MODES),
                key=state.W_INT8_MODE,
                disabled=not ss[state.W_INT8],
                help="auto: static for conv nets, dynamic for Linear-only nets.",
            )
            d4.toggle(
                "Prune residual streams",
                key=state.W_RESIDUAL,
                disabled=ss[state.W_KIND] != "structured",
                help="Structured only. On: residual channels go too (smaller and faster, more accuracy "
                "lost). Off: only each block's inner channels.",
            )
            d4.select_slider(
                "Align kept channels to",
                options=list(ROUND_TO),
                key=state.W_ROUND_TO,
                disabled=ss[state.W_KIND] != "structured",
                format_func=lambda r: "off" if r == 0 else f"multiples of {r}",
                help="Structured only (round_to): every layer keeps a multiple of this many channels, the widths "
                "SIMD kernels run at full speed (Torch-Pruning's round_to). On AVX-512 CPUs fp32 kernels work in "
                "blocks of 16 channels: measured here, 16 made the time fall with the MACs (0.85-0.86 of the MAC "
                "reduction vs 0.74 unaligned) but prunes less, so it can be slower than no alignment "
                "(benchmarks/RESULTS.md section 8). See the latency staircase below.",
            )
    return knob


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
        delta = "same as dense" if abs(drop_pp) < 0.05 else f"{drop_pp:+.1f} pp vs dense"
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


def dense_file_bytes(res: dict) -> int:
    """The dense model's size in the format of ``size_bytes`` (older results: the torch.save file)."""
    return int(res.get("dense_artifact_bytes") or res["dense_size_bytes"])


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
    """ "1.41× vs dense (± 3 %, paired)", or "" when no speed-up was measured."""
    if not res.get("speedup"):
        return ""
    spread = res.get("speedup_spread")
    paired = f" (± {spread:.0%}, paired)" if spread is not None else ""
    return f"{res['speedup']:.2f}× vs dense{paired}"


def latency_card(res: dict, title: str = "CPU latency (p50)", note: str = "") -> None:
    """The latency card of ``res`` (an eager or a runtime result: the same keys); ``note`` goes under it."""
    lat, speedup = res.get("latency_ms_p50"), res.get("speedup")
    noisy = bool(res.get("latency_noisy"))
    if speedup:
        change = (1 / speedup - 1) * 100
        delta = "same as dense" if abs(change) < 0.5 else f"{change:+.0f} % vs dense"
    else:
        delta = _pct_change(lat, res.get("dense_latency_ms_p50"))
    if noisy:
        delta = f"noisy · {delta}" if delta else "noisy"
    st.metric(
        title,
        f"{lat:.3g} ms" if lat is not None else "not measured",
        delta,
        **(_delta_style(None) if noisy else _delta_style(delta)),
    )
    speed = speed_text(res)
    dense = (
        f" · dense {res['dense_latency_ms_p50']:.3g} ms in the same window" if res.get("dense_latency_ms_p50") else ""
    )
    st.caption(
        f"{speed + dense + ' · ' if speed else ''}batch {res['latency_batch']} · "
        f"{res['latency_threads']} thread(s) · {res['latency_kernels']}"
    )
    if noisy:
        st.caption(
            f":material/warning: **Noisy:** {res.get('latency_note') or 'see the spread'}. "
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
