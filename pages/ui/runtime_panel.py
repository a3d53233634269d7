"""The deployment runtime on Explore: the selector, the latency card measured on that runtime, and the
runtime charts (latency staircase, the same recipe on every runtime).

Exporting and compiling a new structure for ONNX Runtime, OpenVINO or ExecuTorch takes longer than a
slider move may, so runtime results are computed by one worker *process* per server (``_jobs``, a
``compress_core.deploy.worker.RuntimeJobs``: its docstring says why not a thread), never in the script
thread: until a result lands, the latency card shows the eager PyTorch number marked *provisional*, and
a fragment polls the job (``POLL_S``) and then triggers one full rerun so every panel (the size chart's
deployable file) sees it. The numbers come from ``compress_core.deploy``; this module only schedules and places them.
Uploaded models stay on eager PyTorch here (the worker rebuilds zoo models only); the CLI measures
them on every runtime (``evaluate --upload FILE --runtime R``).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from contextlib import AbstractContextManager

import streamlit as st

from compress_core import deploy as deployment
from compress_core.base.recipe import Recipe
from compress_core.deploy.runtimes import RUNTIMES
from compress_core.deploy.worker import RuntimeJobs
from compress_core.present import plots
from compress_core.present.headline import headline

from . import cache, catalogue, state

log = logging.getLogger("prunescope.app")
POLL_S = 1.0
AUTO = "auto"
LABELS = {AUTO: "Fastest here (measured)", **RUNTIMES.labels()}  # each runtime's label is its registered class's
DEFAULT_ENV = "PRUNESCOPE_DEFAULT_RUNTIME"  # the selector's default: auto (the fastest measured) or a runtime key
SHORT = {"torch": "PyTorch eager", "onnxruntime": "ONNX RT", "openvino": "OpenVINO", "executorch": "ExecuTorch"}
UPLOADS = "uploaded models are measured on eager PyTorch here; use evaluate --upload FILE --runtime R"


@st.cache_resource(max_entries=1, show_spinner=False)
def _jobs() -> RuntimeJobs:
    return RuntimeJobs()


def foreground() -> AbstractContextManager[None]:
    """Around the user's own measurement (a slider move): the runtime worker is paused (``RuntimeJobs.paused``)."""
    return _jobs().paused()


def label(key: str) -> str:
    return LABELS.get(key, key)


def reasons(model_id: str) -> dict[str, str | None]:
    """Each runtime's reason it is unusable for this model here (None: usable)."""
    out = dict(deployment.available())
    if catalogue.is_upload(model_id):
        out.update({k: UPLOADS for k in out if k != "torch"})
    return out


def options() -> list[str]:
    return [AUTO, *deployment.RUNTIME_KEYS]


def default_choice() -> str:
    """``PRUNESCOPE_DEFAULT_RUNTIME`` when it names an option (a server pinned to its runtime), else auto."""
    value = os.environ.get(DEFAULT_ENV, AUTO).strip().lower()
    if value not in options():
        log.warning("%s=%r is not one of %s; using auto", DEFAULT_ENV, value, ", ".join(options()))
        return AUTO
    return value


def _keep_choice() -> None:
    st.session_state[state.RUNTIME_CHOICE] = st.session_state[state.W_RUNTIME]


def selector(model_id: str) -> None:
    """The runtime select box (Explore, beside the recipe controls); the choice survives other pages."""
    keys, why = options(), reasons(model_id)
    ss = st.session_state
    if ss.get(state.W_RUNTIME) not in keys:
        ss[state.W_RUNTIME] = ss.get(state.RUNTIME_CHOICE, default_choice())
    st.selectbox(
        "Latency on runtime",
        keys,
        key=state.W_RUNTIME,
        on_change=_keep_choice,
        format_func=lambda k: option_label(k, bool(why.get(k))),
        help="The runtime you would deploy with: the latency card, the file in 'Where the bytes go' and Export "
        "follow it. Each runtime runs its own kernels (its own int8 for real-int8 recipes); accuracy is measured "
        "on the runtime too. 'Fastest here' times every available runtime's dense model once per server and "
        "picks the fastest.",
    )
    by_reason: dict[str, list[str]] = {}
    for k in keys:
        if why.get(k):
            by_reason.setdefault(str(why[k]), []).append(SHORT.get(k, label(k)))
    if by_reason:  # the reasons in full here, so the options stay short enough to read
        st.caption("n/a here: " + " · ".join(f"{', '.join(ks)} ({r})" for r, ks in by_reason.items()))


def option_label(key: str, unavailable: bool) -> str:
    """The selector's entry: short enough for its box ("ExecuTorch · n/a", not "ExecuTorch (XNNPACK) (not availab…");
    the reason is in the caption below."""
    return ("Fastest here" if key == AUTO else label(key).split(" (")[0]) + (" · n/a" if unavailable else "")


def resolved(model_id: str) -> tuple[str | None, str]:
    """(runtime key, why) for the selection; (None, message) while 'fastest' is still being measured."""
    choice = st.session_state.get(state.W_RUNTIME, default_choice())
    why = reasons(model_id)
    if choice != AUTO:
        if why.get(choice):
            return "torch", f"{label(choice)} is not available ({why[choice]}); showing PyTorch eager."
        return choice, f"selected: {label(choice)}"
    if catalogue.is_upload(model_id):
        return "torch", f"PyTorch eager ({UPLOADS})"
    fut = _jobs().fastest(model_id, cache.LATENCY_BATCH)
    if not fut.done():
        return None, "timing every runtime's dense model once to find the fastest…"
    try:
        key, why = fut.result()
    except Exception as exc:  # the eager reference still stands
        log.warning("fastest runtime not found: %s", exc)
        return "torch", f"PyTorch eager (the other runtimes could not be timed: {exc})"
    return key, f"fastest here: {why}"


def current(model_id: str, recipe: Recipe, mode: str) -> tuple[dict | None, str | None, str]:
    """(runtime result or None while pending, runtime key or None, why) for Explore's recipe; starts the
    background job when needed. Eager PyTorch results are the Workbench's own (no job)."""
    key, why = resolved(model_id)
    if key is None or key == "torch":
        return None, key, why
    fut: Future = _jobs().result(model_id, recipe, key, mode, cache.LATENCY_BATCH)
    if fut.done():
        try:
            return fut.result(), key, why
        except Exception as exc:
            log.exception("runtime result failed")
            return {"runtime": key, "error": f"{type(exc).__name__}: {exc}"}, key, why
    return None, key, why


def pending(model_id: str, recipe: Recipe, mode: str) -> bool:
    res, key, _ = current(model_id, recipe, mode)
    return res is None and key != "torch"


def deploy_bytes(model_id: str, recipe: Recipe, mode: str) -> tuple[str, int] | None:
    """(runtime label, deployable file bytes) once the selected runtime's result is in, else None."""
    res, key, _ = current(model_id, recipe, mode)
    if key == "torch":
        res = cache.peek(model_id, recipe, mode)  # measured already (Explore's cards); never computes
    if not res or res.get("error") or not res.get("deploy_file_bytes"):
        return None
    return label(key or "torch"), int(res["deploy_file_bytes"])


def staircase_frame(model_id: str, recipe: Recipe, runtime: str):
    """The latency staircase, measured on the worker (a button's measurement, waited for under a spinner)."""
    return _jobs().staircase(model_id, recipe, runtime, cache.LATENCY_BATCH).result()


def across_frame(model_id: str, recipe: Recipe, mode: str):
    df = _jobs().across(model_id, recipe, mode, cache.LATENCY_BATCH).result()
    return df.assign(runtime_label=df["runtime"].map(label))


def deploy_files(model_id: str, recipe: Recipe, runtime: str) -> dict[str, bytes] | str:
    """The deployable file(s) of the recipe on ``runtime`` (Export), or the runtime's one-line refusal."""
    return _jobs().files(model_id, recipe, runtime, cache.LATENCY_BATCH).result()


def _measured_note(rt: dict, key: str, why: str) -> str:
    parts = [why] if not why.startswith("selected") else []
    if eager := headline(rt).eager_text():
        parts.append(f"**{eager}**")
    parts.append(f"accuracy on {label(key)} {rt['accuracy'] * 100:.1f} %")
    deploy = (rt.get("seconds") or {}).get("deploy_s")
    if deploy:
        parts.append(f"export + compile {deploy:.1f} s")
    return " · ".join(parts)


def shown(model_id: str, recipe: Recipe, mode: str, res: dict) -> dict:
    """The result the latency panels show: the selected runtime's once it is in, else the eager ``res``."""
    rt, key, _ = current(model_id, recipe, mode)
    return rt if rt and not rt.get("error") and key not in (None, "torch") else res


def latency_card(model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    """The fourth metric card: latency on the selected runtime; the eager number, marked provisional,
    until the runtime's measurement lands (polled by a fragment, then one full rerun)."""
    from . import widgets

    waiting = pending(model_id, recipe, mode)
    runs = {"n": 0}  # the fragment function is kept and called again on each timer tick

    @st.fragment(run_every=POLL_S if waiting else None)
    def card() -> None:
        runs["n"] += 1
        rt, key, why = current(model_id, recipe, mode)
        if runs["n"] > 1 and waiting and (rt is not None or key == "torch"):
            st.rerun()  # landed on a tick: one full rerun, so the other panels see it; the timer stops
        if key == "torch":
            widgets.latency_card(res, "", "" if why.startswith("selected") else why)
        elif rt is None or key is None:  # a result comes only with its runtime's key
            where = "finding the fastest runtime" if key is None else f"measuring on {label(key)}"
            widgets.latency_card(
                res,
                "Latency p50 · provisional",
                f":material/hourglass_top: **Provisional:** eager PyTorch's number; {where} in the background "
                "(export and compile take seconds for a new structure).",
            )
        elif rt.get("error"):
            widgets.latency_card(res, "Latency p50 · PyTorch eager", f":material/block: {label(key)}: {rt['error']}")
        else:
            widgets.latency_card(rt, f"Latency p50 · {SHORT.get(key, key)}", _measured_note(rt, key, why))

    card()


def _snap(sparsity_pct: int) -> None:
    st.session_state[state.W_SPARSITY] = sparsity_pct


MIN_STOP_SPEEDUP = 1.05  # a stop is at least 5 % faster than dense: the same margin as a step down


def speed_stops(df) -> list[tuple[int, float, bool]]:
    """(slider sparsity %, speed-up, noisy) where the staircase steps down: a fraction of channels kept whose
    latency is at least 5 % below that of the next-larger fraction measured, and that is a real speed-up over
    the runtime's dense model: at least ``MIN_STOP_SPEEDUP`` (the speed-up of the numbers the chart shows,
    ``plots.shown_speedups``; a step down still slower than dense, or one that reads "1.00× faster", is no
    stop). Snapped to the slider's 5 % steps."""
    d = df.dropna(subset=["latency_ms_p50"]).sort_values("fraction_kept", ascending=False)
    d = d.assign(shown=plots.shown_speedups(d))
    noisy = d["latency_noisy"].fillna(False).astype(bool) if "latency_noisy" in d.columns else [False] * len(d)
    out, before = [], None
    for (_, row), nz in zip(d.iterrows(), noisy, strict=True):
        speed = row["shown"]
        if (
            before is not None
            and row["latency_ms_p50"] <= 0.95 * before
            and speed is not None
            and speed >= MIN_STOP_SPEEDUP
        ):
            pct = min(state.SPARSITY_MAX_PCT, round(float(row["sparsity"]) * 20) * 5)
            out.append((pct, float(speed), bool(nz)))
        before = row["latency_ms_p50"]
    return out


def _chart(fig, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


def charts(model_id: str, recipe: Recipe, mode: str) -> None:
    """Explore's runtime section: the latency staircase (structured recipes) and every runtime side by side.
    Both measure on demand (a button): each point exports and compiles a model."""
    ss = st.session_state
    key, _ = resolved(model_id)
    runtime = key or "torch"
    base = recipe.with_recovery("none")  # latency does not depend on recovered weights: skip the recovery
    base = Recipe(prune=base.prune, quant=base.quant)
    with st.expander(f"Runtimes: latency staircase on {label(runtime)}, and this recipe on every runtime"):
        left, right = st.columns(2, gap="medium")
        with left:
            if recipe.prune.kind != "structured":
                st.info("The staircase varies the fraction of channels kept: choose structured pruning.")
            else:
                want = (model_id, base.to_json(), runtime)
                if st.button(f"Measure the staircase on {label(runtime)}", key=state.B_STAIRCASE):
                    with st.spinner("Exporting and timing 7 channel counts (seconds to a minute)…", show_time=True):
                        df = staircase_frame(model_id, base, runtime)
                    ss[state.STAIRCASE] = {"key": want, "df": df}
                shown = ss.get(state.STAIRCASE)
                if shown and shown["key"] == want:
                    _chart(plots.latency_staircase(shown["df"], f"Latency staircase on {label(runtime)}"), "stairs")
                    stops = speed_stops(shown["df"])
                    st.caption(
                        "Latency against the fraction of channels kept, paired with the runtime's dense model; the "
                        "dotted line is where latency would be if it fell with the MACs. "
                        + (
                            "Stops that speed it up:"
                            if stops
                            else "No step of 5 % or more that is faster than dense in this range."
                        )
                    )
                    for i, (pct, speed, noisy) in enumerate(stops):
                        flag = " · noisy" if noisy else ""
                        st.button(
                            f"Snap to {pct} % ({speed:.2f}× faster{flag})",
                            key=f"b_snap_{i}",
                            on_click=_snap,
                            args=(pct,),
                            help="Timing marked noisy: re-measure before trusting this step." if noisy else None,
                        )
        with right:
            want = (model_id, base.to_json(), mode)
            if st.button("Measure this recipe on every runtime", key=state.B_ACROSS):
                with st.spinner("Exporting to every runtime and timing it…", show_time=True):
                    df = across_frame(model_id, base, mode)
                ss[state.ACROSS] = {"key": want, "df": df}
            shown = ss.get(state.ACROSS)
            if shown and shown["key"] == want:
                _chart(plots.runtimes_bars(shown["df"]), "across")
                st.caption(
                    "Each runtime's own kernels and int8; accuracy measured on each (hover). Speed-up against "
                    "eager PyTorch's dense fp32 at the same batch and threads."
                )


def _zip(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def deploy_download(model_id: str, recipe: Recipe) -> None:
    """Export: the file a runtime would ship (``.onnx``, OpenVINO ``.xml`` + ``.bin``, ``.pte``, ``.pt2``)."""
    from compress_core.present.plots import human_bytes

    ss = st.session_state
    if catalogue.is_upload(model_id):  # the worker rebuilds zoo models only
        st.caption(
            "For an uploaded model, write the deployable file from the command line: "
            "`python -m compress_core evaluate --upload FILE --runtime onnxruntime --save-deploy model` "
            "(or openvino, executorch, torch). The .psz artefact and ONNX below work here."
        )
        return
    why = reasons(model_id)
    usable = [k for k in deployment.RUNTIME_KEYS if not why.get(k)]
    chosen, _ = resolved(model_id) if ss.get(state.W_RUNTIME, default_choice()) != AUTO else (None, "")
    if ss.get(state.W_EXPORT_RUNTIME) not in usable:
        ss[state.W_EXPORT_RUNTIME] = chosen if chosen in usable else usable[0]
    runtime = st.selectbox("Runtime", usable, key=state.W_EXPORT_RUNTIME, format_func=label)
    key = (model_id, recipe.to_json(), runtime)
    built = ss.get(state.EXPORT_DEPLOY)
    if built is None or built["key"] != key:
        if not st.button(f"Build the {label(runtime)} file", icon=":material/build:", width="stretch"):
            st.caption(
                "Exported with this recipe's weights (its int8 for real-int8 recipes, quantized by the runtime's own "
                f"tool on training images); ExecuTorch's .pte takes batch {cache.LATENCY_BATCH} (static shapes)."
            )
            return
        with st.spinner(f"Exporting for {label(runtime)}…", show_time=True):
            try:
                files = deploy_files(model_id, recipe, runtime)
            except Exception as exc:  # the worker died or raised: a message, not a traceback
                log.exception("deployable file failed")
                files = f"{type(exc).__name__}: {exc}"
        built = {"key": key, "files": files}
        ss[state.EXPORT_DEPLOY] = built
    files = built["files"]
    if isinstance(files, str):
        st.error(f"No deployable file: {files}. The .psz artefact, ONNX and the recipe still work.")
        return
    total = sum(len(b) for b in files.values())
    name, data = next(iter(files.items())) if len(files) == 1 else (f"{model_id}-{runtime}.zip", _zip(files))
    unzipped = "" if len(files) == 1 else f"; {human_bytes(total)} unzipped"
    st.download_button(
        f"Download {name} ({human_bytes(len(data))}{unzipped})",
        data,
        name,
        mime="application/octet-stream",
        icon=":material/download:",
        width="stretch",
        key=state.B_DEPLOY_DOWNLOAD,
    )
    st.caption(" · ".join(f"`{n}` {human_bytes(len(b))}" for n, b in files.items()))
