"""Compare and Export panels: pinned recipes side by side, and the downloads."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.files.onnx import onnx_bytes
from compress_core.present import plots

from . import cache, catalogue, errors, runtime_panel, state, views


# -- Compare --------------------------------------------------------------------------------------
def pin_controls(pins: list[dict]) -> None:
    """Each pin with its Unpin button, and Clear all: drawn before anything is measured, so a pin that
    fails to measure can always be removed."""
    with st.container(border=True):
        for i, pin in enumerate(pins):
            name_col, button_col = st.columns([5, 1], vertical_alignment="center")
            name_col.markdown(f"**{views.pin_name(i + 1, pin)}**")
            button_col.button(
                "Unpin",
                key=state.B_UNPIN.format(i),
                on_click=state.unpin,
                args=(i,),
                icon=":material/close:",
                width="stretch",
                help=f"Remove pin #{i + 1}",
            )
        st.button("Clear all pins", key=state.B_CLEAR_PINS, on_click=state.clear_pins, icon=":material/delete_sweep:")


# -- Export ---------------------------------------------------------------------------------------
def slug(recipe: Recipe) -> str:
    return re.sub(r"[^a-z0-9]+", "-", recipe.label().lower()).strip("-") or "dense"


def artifact_download(model_id: str, recipe: Recipe) -> None:
    if catalogue.artifact_id(model_id) is None:
        st.info(
            "This uploaded graph matches no zoo architecture, so it has no .psz artefact; the ONNX file and "
            "the results CSV still work.",
            icon=":material/info:",
        )
        return
    data = cache.artifact_file(model_id, recipe.to_json())
    st.download_button(
        f"Download .psz ({plots.human_bytes(len(data))})",
        data,
        f"{model_id}-{slug(recipe)}.psz",
        mime="application/octet-stream",
        type="primary",
        icon=":material/download:",
        width="stretch",
    )
    st.caption(
        "Bit-packed codes, sparse layouts and a CRC; `compress_core.files.artifact.load_artifact` reads it back."
    )


ONNX_BATCH = {"any batch (dynamic)": True, "batch 1 only": False}


def onnx_download(model_id: str, recipe: Recipe) -> None:
    """The compressed float model as ONNX (dynamic batch by default), and for a real-int8 recipe its int8 ONNX."""
    dynamic = ONNX_BATCH[st.radio("Batch dimension", list(ONNX_BATCH), key=state.W_ONNX_BATCH, horizontal=True)]
    key = (model_id, recipe.to_json(), dynamic)
    built = st.session_state.get(state.EXPORT_ONNX)
    if built is None or built["key"] != key:
        if st.button("Build ONNX file", icon=":material/build:", width="stretch"):
            built = _build_onnx(model_id, recipe, dynamic, key)
            st.session_state[state.EXPORT_ONNX] = built
        else:
            st.caption(
                "The compressed float model (pruned; weights as fp32 values, k-bit ones dequantized)"
                + ("; the int8 model is the ONNX Runtime file below." if recipe.quant.int8 else ".")
            )
            _int8_onnx(model_id, recipe)
            return
    if built["error"]:
        st.error(f"ONNX export failed: {built['error']}. The .psz artefact and the recipe still work.")
        return
    batch = "any batch" if dynamic else "batch 1"
    st.download_button(
        f"Download .onnx ({plots.human_bytes(len(built['bytes']))}, fp32, {batch})",
        built["bytes"],
        f"{model_id}-{slug(recipe)}{'' if dynamic else '-b1'}.onnx",
        mime="application/octet-stream",
        icon=":material/download:",
        width="stretch",
    )
    _int8_onnx(model_id, recipe)


def _build_onnx(model_id: str, recipe: Recipe, dynamic: bool, key: tuple) -> dict:
    with st.spinner("Exporting to ONNX (torch.onnx.export; a few seconds)…"):
        try:
            model = cache.compressed(model_id, recipe).float_model
            data = onnx_bytes(model, catalogue.spec(model_id).input_shape, dynamic_batch=dynamic)
            return {"key": key, "bytes": data, "error": None}
        except Exception as exc:
            errors.log.exception("ONNX export failed")
            why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            return {"key": key, "bytes": None, "error": why}


def _int8_onnx(model_id: str, recipe: Recipe) -> None:
    """A real-int8 recipe's int8 ONNX: the file ONNX Runtime ships (static QDQ int8 from its own quantizer on
    training images, any batch), built by the runtime worker like the Deployable file below."""
    if not recipe.quant.int8:
        return
    why = runtime_panel.reasons(model_id).get("onnxruntime")
    if why:
        st.caption(f"int8 ONNX: {why}")
        return
    key = (model_id, recipe.to_json())
    built = st.session_state.get(state.EXPORT_ONNX_INT8)
    if built is None or built["key"] != key:
        if not st.button("Build the int8 ONNX file", icon=":material/build:", width="stretch"):
            st.caption("int8 ONNX: static QDQ per-channel, quantized by ONNX Runtime on training images.")
            return
        with st.spinner("Quantizing for ONNX Runtime…", show_time=True):
            try:
                files = runtime_panel.deploy_files(model_id, recipe, "onnxruntime")
            except Exception as exc:  # the worker died or raised: a message, not a traceback
                errors.log.exception("int8 ONNX failed")
                files = f"{type(exc).__name__}: {exc}"
        built = {"key": key, "files": files}
        st.session_state[state.EXPORT_ONNX_INT8] = built
    if isinstance(built["files"], str):
        st.error(f"No int8 ONNX file: {built['files']}. The fp32 ONNX and the .psz artefact still work.")
        return
    ((name, data),) = built["files"].items()
    st.download_button(
        f"Download int8 {name} ({plots.human_bytes(len(data))}, any batch)",
        data,
        f"{model_id}-{slug(recipe)}-int8.onnx",
        mime="application/octet-stream",
        icon=":material/download:",
        width="stretch",
        key="dl_onnx_int8",
    )


def results_csv(model_id: str, recipe: Recipe, mode: str, res: dict) -> bytes:
    """The current result, then every stored sweep result of this model, as one wide CSV."""
    from compress_core.study.store import result_row, rows_frame

    frames = [rows_frame([result_row(res, recipe.to_json(), mode, cached=True)])]
    try:
        frames.append(cache.store_frame(model_id, mode))
    except ValueError as exc:  # an unreadable store: export the current result alone
        st.warning(f"Stored sweep results left out: {exc}")
    return pd.concat([f for f in frames if len(f)], ignore_index=True).to_csv(index=False).encode()
