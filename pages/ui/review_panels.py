"""Compare and Export panels: pinned recipes side by side, and the downloads."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from compress_core import plots
from compress_core.onnx_export import onnx_bytes
from compress_core.recipe import Recipe

from . import cache, catalogue, errors, state


# -- Compare --------------------------------------------------------------------------------------
def compare_frame(pins: list[dict], mode: str) -> pd.DataFrame:
    rows = []
    for i, pin in enumerate(pins, start=1):
        res = cache.result(pin["model"], Recipe.from_json(pin["recipe"]), mode)
        rows.append({"#": i, "model": pin["model"], "recipe": pin["label"], "accuracy": res["accuracy"],
                     "ci": f"{res['accuracy_ci_low']:.1%}–{res['accuracy_ci_high']:.1%}",
                     "params_nonzero": res["params_nonzero"], "size_bytes": res["size_bytes"],
                     "compression_ratio": res["compression_ratio"], "latency_ms_p50": res["latency_ms_p50"],
                     "speedup": res["speedup"], "kernels": res["latency_kernels"], "macs": res["macs"],
                     "simulated": "; ".join(res["simulated"] or []) or "nothing"})
    return pd.DataFrame(rows)


def compare(pins: list[dict], mode: str) -> None:
    with st.spinner("Measuring the pinned recipes…"):
        df = compare_frame(pins, mode)
    st.dataframe(df, hide_index=True, width="stretch", column_config={
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "ci": st.column_config.TextColumn("95 % CI"),
        "params_nonzero": st.column_config.NumberColumn("non-zero params", format="localized"),
        "size_bytes": st.column_config.NumberColumn("file size (bytes)", format="localized"),
        "compression_ratio": st.column_config.NumberColumn("ratio", format="%.1f×"),
        "latency_ms_p50": st.column_config.NumberColumn("latency p50 (ms)", format="%.3f"),
        "speedup": st.column_config.NumberColumn(format="%.2f×"),
        "simulated": st.column_config.TextColumn("simulated / estimated", width="large")})
    long = pd.concat([
        pd.DataFrame({"label": df["recipe"], "metric": "accuracy", "value": df["accuracy"] * 100, "unit": "%"}),
        pd.DataFrame({"label": df["recipe"], "metric": "file size", "value": df["size_bytes"] / 1e3, "unit": "kB"}),
        pd.DataFrame({"label": df["recipe"], "metric": "latency", "value": df["latency_ms_p50"], "unit": "ms"}),
        pd.DataFrame({"label": df["recipe"], "metric": "non-zero params", "value": df["params_nonzero"] / 1e3,
                      "unit": "k"}),
    ], ignore_index=True)
    st.plotly_chart(plots.compare_bars(long), width="stretch", key="compare_bars")
    cols = st.columns(len(pins) + 1)
    for i, pin in enumerate(pins):
        cols[i].button(f"Unpin #{i + 1}", key=state.B_UNPIN.format(i), on_click=state.unpin, args=(i,),
                       help=pin["label"],
                       icon=":material/close:", width="stretch")
    cols[-1].button("Clear all", on_click=state.clear_pins, width="stretch")


# -- Export ---------------------------------------------------------------------------------------
def slug(recipe: Recipe) -> str:
    return re.sub(r"[^a-z0-9]+", "-", recipe.label().lower()).strip("-") or "dense"


def artifact_download(model_id: str, recipe: Recipe) -> None:
    if catalogue.artifact_id(model_id) is None:
        st.info("This uploaded graph matches no zoo architecture, so it has no .psz artefact; the ONNX file and "
                "the results CSV still work.", icon=":material/info:")
        return
    data = cache.artifact_file(model_id, recipe.to_json())
    st.download_button(f"Download .psz ({plots.human_bytes(len(data))})", data, f"{model_id}-{slug(recipe)}.psz",
                       mime="application/octet-stream", type="primary", icon=":material/download:", width="stretch")
    st.caption("Bit-packed codes, sparse layouts and a CRC; `compress_core.artifact.load_artifact` reads it back.")


def onnx_download(model_id: str, recipe: Recipe) -> None:
    key = (model_id, recipe.to_json())
    built = st.session_state.get(state.EXPORT_ONNX)
    if built is None or built["key"] != key:
        if st.button("Build ONNX file", icon=":material/build:", width="stretch"):
            with st.spinner("Exporting to ONNX (torch.onnx.export; a few seconds)…"):
                try:
                    model = cache.compressed(model_id, recipe).float_model
                    data = onnx_bytes(model, catalogue.spec(model_id).input_shape)
                    built = {"key": key, "bytes": data, "error": None}
                except Exception as exc:  # noqa: BLE001 - shown to the user with the reason
                    errors.log.exception("ONNX export failed")
                    why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                    built = {"key": key, "bytes": None, "error": why}
            st.session_state[state.EXPORT_ONNX] = built
        else:
            st.caption("The compressed float model (pruned, weights as fp32 values); int8 kernels are not exported.")
            return
    if built["error"]:
        st.error(f"ONNX export failed: {built['error']}. The .psz artefact and the recipe still work.")
        return
    st.download_button(f"Download .onnx ({plots.human_bytes(len(built['bytes']))})", built["bytes"],
                       f"{model_id}-{slug(recipe)}.onnx", mime="application/octet-stream",
                       icon=":material/download:", width="stretch")


def results_csv(model_id: str, recipe: Recipe, mode: str, res: dict) -> bytes:
    """The current result, then every stored sweep result of this model, as one wide CSV."""
    from compress_core.store import result_row, rows_frame

    frames = [rows_frame([result_row(res, recipe.to_json(), mode, cached=True)])]
    try:
        frames.append(cache.store_frame(model_id, mode))
    except ValueError as exc:  # an unreadable store: export the current result alone
        st.warning(f"Stored sweep results left out: {exc}")
    return pd.concat([f for f in frames if len(f)], ignore_index=True).to_csv(index=False).encode()
