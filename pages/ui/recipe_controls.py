"""Explore's recipe controls: each widget owns its session-state key (``state.W_*``) and the recipe is read
back with ``state.recipe_from_widgets``. The options' words come from the core's registries (``vocab``)."""

from __future__ import annotations

import streamlit as st

from compress_core.base.recipe import BITS, CRITERIA, GRANULARITIES, INT8_MODES, ROUND_TO, SCHEMES, SCOPES

from . import catalogue, state, vocab

LOCKED = (
    "This uploaded model is a compiled graph (TorchScript or torch.export) that matches no zoo "
    "architecture: PruneScope can only evaluate it as uploaded (dense, fp32). Pruning and quantization "
    "need nn.Conv2d/nn.Linear modules; upload its state_dict to compress it."
)


def recipe_controls(slider_layers: int | None = None, recovery_levels: tuple[str, ...] = ("none",)):
    """Explore's recipe widgets (values live in ``state.W_*``; read them with ``state.recipe_from_widgets``).

    ``slider_layers``: how many layers the sparsity still moves (None: all prunable layers); at 0 the
    slider is switched off; ``recovery_levels``: the recovery options this model can use. Returns the
    slot under the slider where ``knob_note`` says what it did."""
    if not catalogue.prunable(state.model_id()):
        st.info(LOCKED, icon=":material/lock:")
    with st.container(border=True):
        left, right = st.columns(2, gap="large")
        knob = _sparsity(left, slider_layers == 0)
        _bits_and_recovery(right, recovery_levels)
        _kind_row()
        if st.session_state[state.W_KIND] == "structured":
            st.caption(vocab.STRUCTURED_DEFAULTS_WHY)
        with st.expander(
            "Details: quantization scheme, granularity, int8 backend, residual streams, channel alignment"
        ):
            _details()
    return knob


def _sparsity(column, off: bool):
    """The sparsity slider and, under it, the empty slot its note goes in."""
    column.slider(
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
    return column.empty()


def _bits_and_recovery(column, recovery_levels: tuple[str, ...]) -> None:
    column.select_slider(
        "Weight bit-width",
        options=list(BITS),
        key=state.W_BITS,
        format_func=vocab.bits_label,
        help="1 = sign × scale, 2–8 = fixed point (simulated on fp32 kernels), 16 = fp16, 32 = the original fp32.",
    )
    column.radio(
        "Recovery",
        list(recovery_levels),
        key=state.W_RECOVERY,
        horizontal=True,
        format_func=lambda r: vocab.RECOVERY_LABELS[r],
        help=vocab.recovery_help(recovery_levels),
    )


def _kind_row() -> None:
    """Pruning kind, importance criterion, scope and the int8 toggle, side by side."""
    ss = st.session_state
    c1, c2, c3, c4 = st.columns([1.5, 1.2, 0.9, 1.2], gap="medium")
    c1.radio(
        "Pruning kind",
        list(vocab.KINDS),
        key=state.W_KIND,
        horizontal=True,
        on_change=state.on_kind_change,
        format_func=lambda k: vocab.KIND_LABELS[k],
        help=vocab.kind_help(),
    )
    c2.selectbox(
        "Importance criterion",
        list(CRITERIA),
        key=state.W_CRITERION,
        format_func=lambda c: vocab.CRITERION_LABELS.get(c, c),
        help=vocab.criterion_help(CRITERIA),
    )
    c3.radio(
        "Scope",
        list(SCOPES),
        key=state.W_SCOPE,
        horizontal=True,
        format_func=lambda s: vocab.SCOPE_LABELS[s],
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


def _details() -> None:
    """The expander's quantization scheme, granularity, int8 backend, residual streams and channel alignment."""
    ss = st.session_state
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
    structured = ss[state.W_KIND] == "structured"
    d4.toggle(
        "Prune residual streams",
        key=state.W_RESIDUAL,
        disabled=not structured,
        help="Structured only. On: residual channels go too (smaller and faster, more accuracy "
        "lost). Off: only each block's inner channels.",
    )
    d4.select_slider(
        "Align kept channels to",
        options=list(ROUND_TO),
        key=state.W_ROUND_TO,
        disabled=not structured,
        format_func=lambda r: "off" if r == 0 else f"multiples of {r}",
        help="Structured only (round_to): every layer keeps a multiple of this many channels, the widths "
        "SIMD kernels run at full speed (Torch-Pruning's round_to). On AVX-512 CPUs fp32 kernels work in "
        "blocks of 16 channels: measured here, 16 made the time fall with the MACs (0.85-0.86 of the MAC "
        "reduction vs 0.74 unaligned) but prunes less, so it can be slower than no alignment "
        "(benchmarks/RESULTS.md section 8). See the latency staircase below.",
    )
