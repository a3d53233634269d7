"""Sweep page panels: the grid form, the run (here or on Ray) with its progress bar, and the stored results."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core.base.recipe import BITS, CRITERIA, SCOPES, Recipe
from compress_core.present import plots

from . import cache, state
from .runtime_panel import label as runtime_label
from .vocab import CRITERION_LABELS, SCOPE_LABELS, bits_label
from .widgets import recovery_radio

SPARSITY_CHOICES = (0.0, 0.1, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95)
TABLE_COLUMNS = [
    "label",
    "accuracy",
    "params_nonzero",
    "size_bytes",
    "size_vs_dense",
    "latency_ms_p50",
    "speedup",
    "speedup_spread",
    "latency_noisy",
    "latency_kernels",
    "measured_on",
    "pareto_size",
    "pareto_latency",
    "chance",
    "simulated",
]


def _ray_option() -> str | None:
    """Inside the form: "Run on Ray" when ``PRUNESCOPE_RAY_ADDRESS`` names a cluster (or ``local``); the
    Ray address if the user ticked it. Without Ray installed the option is shown off, with the install line."""
    from compress_core.study import executors

    address = executors.ray_address()
    if address is None:
        return None
    missing = executors.ray_missing()
    on_ray = st.checkbox(
        f"Run on Ray ({address})",
        key=state.SWEEP_RAY,
        disabled=missing is not None,
        help=missing
        or "Each config runs as a Ray task on the cluster's workers (one CPU each; fine-tuning asks for more); "
        "this server alone writes the results, so a rerun skips every finished row.",
    )
    if missing is not None:
        st.caption(f"Run on Ray is off: {missing}.")
    return address if on_ray else None


def _runtime_select() -> str:
    """Outside the form: the runtime also picks the stored rows shown, at once."""
    return st.columns([1, 2])[0].selectbox(
        "Runtime",
        _runtimes(),
        key=state.SWEEP_RUNTIME,
        format_func=runtime_label,
        help="The sweep measures every config's accuracy and latency on this runtime (each exported and compiled "
        "on a deployment runtime: slower than eager PyTorch), and the charts below show the rows stored for it; "
        "rows of different runtimes are kept apart.",
    )


def form() -> tuple[list[Recipe], str | None, str] | None:
    """The grid the user submitted (deduplicated by ``sweep.grid``), the Ray address to run it on (None: in
    this process) and the runtime to measure on, or None."""
    from compress_core.study import sweep

    runtime = _runtime_select()
    with st.form("sweep_form", border=True):
        c1, c2, c3 = st.columns(3)
        kinds = c1.multiselect(
            "Pruning kinds", ["unstructured", "structured"], default=["unstructured"], key=state.SWEEP_KINDS
        )
        sparsities = c2.multiselect(
            "Sparsities",
            SPARSITY_CHOICES,
            default=[0.0, 0.5, 0.75, 0.9],
            key=state.SWEEP_SPARSITIES,
            format_func=lambda f: f"{f:.0%}",
        )
        bits = c3.multiselect(
            "Bit-widths", list(BITS), default=[32, 8, 4], key=state.SWEEP_BITS, format_func=bits_label
        )
        c4, c5, c6 = st.columns(3)
        criterion = c4.selectbox(
            "Criterion",
            list(CRITERIA),
            index=list(CRITERIA).index("l1"),
            key=state.SWEEP_CRITERION,
            format_func=lambda c: CRITERION_LABELS.get(c, c),
        )
        scope = c5.radio(
            "Scope",
            list(SCOPES),
            index=list(SCOPES).index("global"),
            key=state.SWEEP_SCOPE,
            horizontal=True,
            format_func=lambda s: SCOPE_LABELS[s],
        )
        int8 = c6.checkbox("Also real int8 kernels for 8-bit points", key=state.SWEEP_INT8)
        recovery = recovery_radio(
            state.SWEEP_RECOVERY,
            "Recovery",
            help="Post-training recovery applied to every compressed point (Explore's default for this model); "
            "each row also keeps its one-shot accuracy.",
        )
        ray_address = _ray_option()
        submitted = st.form_submit_button("Run sweep", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return None
    if not (kinds and sparsities and bits):
        st.warning("Pick at least one pruning kind, one sparsity and one bit-width.")
        return None
    recipes = sweep.grid(
        kinds, sorted(sparsities), bits, criterion=criterion, scope=scope, int8=int8, recovery=recovery
    )
    return recipes, ray_address, runtime


def _runtimes() -> list[str]:
    """eager PyTorch and every deployment runtime installed here."""
    from compress_core import deploy as deployment

    return [k for k, why in deployment.available().items() if why is None]


def view_runtime() -> str:
    """The runtime whose stored rows the page shows (the form's choice; eager PyTorch by default)."""
    return st.session_state.get(state.SWEEP_RUNTIME) or "torch"


def run(
    model_id: str, mode: str, recipes: list[Recipe], ray_address: str | None = None, runtime: str = "torch"
) -> None:
    where_to = (f"on Ray ({ray_address})" if ray_address else "here") + (
        f" on {runtime_label(runtime)}" if runtime != "torch" else ""
    )
    bar = st.progress(0.0, text=f"Measuring {len(recipes)} recipe(s) {where_to}…")
    st.session_state[state.SWEEP_GRID] = {"where": (model_id, mode, runtime), "recipes": [r.to_json() for r in recipes]}

    def on_result(i: int, n: int, row: dict) -> None:
        where = "stored earlier" if row["cached"] else f"{row['accuracy']:.1%} on {row['host'] or 'this machine'}"
        bar.progress(i / n, text=f"{i} of {n} · {row['label']} · {where}")

    df = (
        _on_ray(model_id, mode, recipes, ray_address, on_result, runtime)
        if ray_address
        else cache.run_sweep(model_id, recipes, mode, on_result, runtime)
    )
    bar.empty()
    fresh = int((~df["cached"]).sum()) if len(df) else 0
    st.success(
        f"Sweep done {where_to}: {len(df)} recipe(s), {fresh} newly measured, all saved to disk.",
        icon=":material/check_circle:",
    )
    for failed in df.attrs.get("failed", []):
        st.warning(f"{failed['label']} was not measured: {failed['error']}.", icon=":material/warning:")


def _on_ray(
    model_id: str, mode: str, recipes: list[Recipe], address: str, on_result, runtime: str = "torch"
) -> pd.DataFrame:
    """The sweep as Ray tasks; this server writes each finished row to the store and shares eager PyTorch's
    rows with Explore."""
    from compress_core.study.executors import RayExecutor
    from compress_core.study.store import ResultStore
    from compress_core.study.sweep import run_sweep

    with ResultStore() as store, RayExecutor(address) as executor:

        def on_row(i: int, n: int, row: dict) -> None:
            stored = store.get(model_id, row["recipe_json"], mode, cache.LATENCY_BATCH) if runtime == "torch" else None
            if stored is not None:
                cache.remember(model_id, mode, stored)
            on_result(i, n, row)

        return run_sweep(
            model_id,
            recipes,
            mode=mode,
            latency_batch=cache.LATENCY_BATCH,
            latency_budget_s=cache.LATENCY_BUDGET_S,
            on_result=on_row,
            store=store,
            executor=executor,
            runtime=runtime,
        )


def _with_pareto(df: pd.DataFrame, classes: int) -> pd.DataFrame:
    """The stored rows with the core's chance flag and Pareto fronts (``sweep.mark_fronts``: a chance-level
    model is never on a front), where each row ran, and how much smaller than dense its file is."""
    from compress_core.study import sweep

    out = sweep.mark_fronts(df, classes)
    out["measured_on"] = [_where(row) for row in out.to_dict("records")]
    out["size_vs_dense"] = sweep.size_vs_dense(out)
    return out


def _where(row: dict) -> str:
    """Where a row ran: host, CPU model, torch threads and executor ("" for rows stored before this was kept)."""
    if not isinstance(row.get("host"), str) or not row["host"]:
        return ""
    executor = "Ray worker" if row.get("executor") == "ray" else "this server"
    return f"{row['host']} · {row.get('cpu_model') or '?'} · {row.get('latency_threads')} thr · {executor}"


def _hosts_caption(df: pd.DataFrame) -> str:
    hosts = sorted({h for h in df["host"] if isinstance(h, str) and h}) if "host" in df else []
    if len(hosts) < 2:
        return ""
    return (
        f" Rows were measured on {len(hosts)} hosts ({', '.join(hosts)}; see the measured on column): each "
        "speed-up is against a dense baseline timed on the same worker, so compare speed-ups across hosts, "
        "not raw milliseconds."
    )


def _selected_index(event: object) -> int | None:
    try:
        points = event["selection"]["points"]  # type: ignore[index]
        return int(points[0]["customdata"]) if points else None
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _latency_caption(df: pd.DataFrame) -> str:
    from compress_core.study.sweep import shared_latency_ms

    shared = shared_latency_ms(df)
    if shared is not None:
        return (
            f" Every recipe here runs the dense fp32 kernels (unstructured zeros and simulated bits are still "
            f"multiplied), so all share the dense latency, {shared:.3g} ms: add structured pruning or real "
            "int8 kernels to the sweep to move along the latency axis."
        )
    noisy = int(df["latency_noisy"].sum())
    return f" {noisy} latency measurement(s) are noisy (see the noisy? column): re-measure them." if noisy else ""


def results(model_id: str, mode: str, df: pd.DataFrame, runtime: str = "torch") -> None:
    """Pareto charts, the table, and a picker that opens a row's recipe in Explore (rows of ``runtime``)."""
    from . import catalogue

    on = "" if runtime == "torch" else f" on {runtime_label(runtime)}"
    if df.empty:
        st.info(
            f"No stored results{on} for this model and evaluation size yet: run a sweep above.", icon=":material/info:"
        )
        return
    if on:
        st.caption(f"Showing the rows measured{on}: accuracy and latency on that runtime's own session.")
    df = _with_pareto(df, catalogue.spec(model_id).num_classes)
    df["earlier"], grid_note = _grid_marks(df, (model_id, mode, runtime))
    left, right = st.columns(2, gap="medium")
    picked = []
    panels = (
        (left, "size_bytes", "pareto_size", state.SWEEP_CHART_SIZE, "Accuracy vs file size"),
        (right, "latency_ms_p50", "pareto_latency", state.SWEEP_CHART_LATENCY, "Accuracy vs CPU latency"),
    )
    for col, x, flag, key, title in panels:
        with col:
            fig = plots.tradeoff_scatter(df.rename(columns={flag: "pareto"}), x=x, title=title)
            picked.append(
                _selected_index(
                    st.plotly_chart(fig, width="stretch", key=key, on_select="rerun", selection_mode="points")
                )
            )
    st.caption(
        "Click a point to pick it below. Amber line: the Pareto front (no other recipe is both smaller "
        "or faster and more accurate); hollow points are at chance level and never on it. "
        + grid_note
        + _latency_caption(df)
        + _hosts_caption(df)
    )
    choice = next((p for p in picked if p is not None and p in df.index), None)
    if choice is not None and st.session_state.get(state.SWEEP_PICK_FROM_CHART) != choice:
        st.session_state[state.SWEEP_PICK] = choice  # a new click on a chart moves the picker once
        st.session_state[state.SWEEP_PICK_FROM_CHART] = choice
    if st.session_state.get(state.SWEEP_PICK) not in df.index:  # e.g. after switching models
        st.session_state.pop(state.SWEEP_PICK, None)
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    index = c1.selectbox("Recipe", list(df.index), key=state.SWEEP_PICK, format_func=lambda i: _option(df, i))
    if c2.button("Open in Explore", type="primary", icon=":material/tune:", width="stretch"):
        if runtime == "torch":  # an eager row is Explore's own result: instant there
            cache.remember_stored(model_id, df.loc[index, "recipe_json"], mode)
        state.open_in_explore(Recipe.from_json(df.loc[index, "recipe_json"]), state.model_id())
        st.switch_page("pages/explore.py", query_params=state.explore_link())
    if runtime == "torch":  # re-measuring times eager PyTorch against dense
        _remeasure_noisy(c3, model_id, mode, df)
    _table(df)


def _grid_marks(df: pd.DataFrame, where: tuple[str, str, str]) -> tuple[pd.Series, str]:
    """Which stored rows came before the grid last run here (on this model, evaluation and runtime), and a
    sentence that says what the charts hold: the store keeps every sweep's rows, not only this grid's."""
    last = st.session_state.get(state.SWEEP_GRID)
    if not last or tuple(last["where"]) != where:
        return pd.Series(False, index=df.index), (
            f"The charts show every row stored for this model ({len(df)}), from every sweep run so far."
        )
    mine = df["recipe_json"].isin(set(last["recipes"]))
    others = int((~mine).sum())
    if not others:
        return ~mine, f"All {len(df)} points are the grid you just ran."
    return ~mine, (
        f"{int(mine.sum())} point(s) are the grid you just ran; the other {others}, faded, were stored earlier by "
        "other sweeps (the fronts are drawn over all of them)."
    )


def _remeasure_noisy(col, model_id: str, mode: str, df: pd.DataFrame) -> None:
    noisy = df[df["latency_noisy"]]
    if not col.button(
        f"Re-measure {len(noisy)} noisy",
        key=state.B_SWEEP_REMEASURE,
        icon=":material/timer:",
        width="stretch",
        disabled=noisy.empty,
        help="Time each noisy row against the dense model again; the store keeps the better-quality "
        "measurement of the two (quiet beats noisy, then the smaller spread).",
    ):
        return
    bar = st.progress(0.0, text="Re-measuring…")
    for i, rj in enumerate(noisy["recipe_json"], start=1):
        cache.remember_stored(model_id, rj, mode)
        cache.remeasure(model_id, Recipe.from_json(rj), mode)
        bar.progress(i / len(noisy), text=f"Re-measured {i} of {len(noisy)}")
    st.rerun()


TABLE_CONFIG = {
    "label": st.column_config.TextColumn("recipe", width="large"),
    "accuracy": st.column_config.NumberColumn("top-1", format="percent"),
    "params_nonzero": st.column_config.NumberColumn("non-zero params", format="localized"),
    "size_bytes": st.column_config.NumberColumn("file size (bytes)", format="localized"),
    "size_vs_dense": st.column_config.NumberColumn("× smaller than dense", format="%.1f×"),
    "latency_ms_p50": st.column_config.NumberColumn("latency p50 (ms)", format="%.3f"),
    "speedup": st.column_config.NumberColumn("speed-up (paired)", format="%.2f×"),
    "speedup_spread": st.column_config.NumberColumn("± spread", format="percent"),
    "latency_noisy": st.column_config.CheckboxColumn("noisy?"),
    "latency_kernels": st.column_config.TextColumn("kernels"),
    "measured_on": st.column_config.TextColumn("measured on", help="host · CPU · torch threads · executor"),
    "pareto_size": st.column_config.CheckboxColumn("front (size)"),
    "pareto_latency": st.column_config.CheckboxColumn("front (latency)"),
    "chance": st.column_config.CheckboxColumn("chance level"),
    "simulated": st.column_config.TextColumn("simulated / estimated", width="large"),
}


def _table(df: pd.DataFrame) -> None:
    st.dataframe(df[TABLE_COLUMNS], width="stretch", hide_index=True, column_config=TABLE_CONFIG)


def _option(df: pd.DataFrame, i: int) -> str:
    row = df.loc[i]
    star = " ★" if row["pareto_size"] or row["pareto_latency"] else ""
    return f"{row['label']} — {row['accuracy']:.1%}, {plots.human_bytes(row['size_bytes'])}{star}"
