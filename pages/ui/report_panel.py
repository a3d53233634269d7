"""The "Download report" button of Compare and Explore: one self-contained HTML file (``compress_core.present.report``)
with the recipes side by side, every chart, the honest-number notes, the environment, and each row's
artefact hash with the command that re-measures it.

The file is built when the button is pressed (Streamlit runs the callable on its own thread, without
a rerun), from the results the page already shows; a failure becomes an HTML page that says why.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re

import streamlit as st

from compress_core.base import machine, timing
from compress_core.base.recipe import Recipe
from compress_core.present import report
from compress_core.present.plots import human_bytes

from . import cache, catalogue, state, views

log = logging.getLogger("prunescope.app")
RULES = [
    "Accuracy: top-1 on real test images; the quick evaluation is a fixed stratified subset of 1,000, shown "
    "with its 95 % Wilson interval.",
    "File size: the real compressed artefact (.psz); 'dense' is the dense model in that same format.",
    f"Latency: each model is timed paired with its dense baseline, interleaved in the same window "
    f"(alternating rounds, every call timed on its own); each latency is the median of the rounds' fast calls, "
    f"named with its runtime, threads and batch, and the speed-up printed beside it is the dense median over it "
    f"(the two numbers shown), ± half the IQR of the per-round ratios. A result is marked noisy when that "
    f"spread exceeds ± {timing.SPREAD_LIMIT:.0%}, when the "
    f"median call is over {timing.SLOWDOWN_LIMIT:g}× the fast ones (other work held the cores), or when the "
    f"machine had more runnable threads than CPUs.",
]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "dense"


def _command(model_id: str, recipe_json: str, mode: str) -> str:
    if catalogue.is_upload(model_id):
        entry = catalogue.lookup(model_id)
        name = entry.uploaded.filename if entry else "YOUR_FILE"
        return report.cli_command(model_id, recipe_json, mode, cache.LATENCY_BATCH).replace(
            f"--model {model_id}", f"--upload {name}"
        )
    return report.cli_command(model_id, recipe_json, mode, cache.LATENCY_BATCH)


def artefact_row(row_name: str, model_id: str, recipe_json: str, mode: str) -> dict:
    """The .psz file of one row: its name, size and sha256, and the commands that re-measure it."""
    out = {"row": row_name, "command": _command(model_id, recipe_json, mode)}
    if catalogue.artifact_id(model_id) is None:
        return {**out, "file": "no .psz format for this uploaded graph", "sha256": "–"}
    data = cache.artifact_file(model_id, recipe_json)
    name = f"{model_id}-{slug(state.recipe_text(Recipe.from_json(recipe_json)))}.psz"
    return {
        **out,
        "file": name,
        "size": human_bytes(len(data)),
        "sha256": hashlib.sha256(data).hexdigest(),
        "artifact_command": report.artifact_command(name, mode, cache.LATENCY_BATCH),
    }


def compare_html(pins: list[dict], mode: str) -> str:
    """The report of Compare's pinned recipes."""
    df, failed = views.compare_frame(pins, mode)
    table = views.side_by_side(df)
    figures = [("Pinned recipes", views.compare_figure(df))] if len(df) else []
    rows = [artefact_row(r["pin"], r["model"], r["recipe_json"], mode) for _, r in df.iterrows()]
    notes = [*views.notes_of(df), *failed, *RULES]
    return report.build_report(
        "PruneScope: pinned recipes side by side",
        table,
        figures,
        notes,
        machine.environment(),
        rows,
        subtitle=f"{len(df)} recipe(s) · evaluation: {mode}",
        results=[cache.result(r["model"], Recipe.from_json(r["recipe_json"]), mode) for _, r in df.iterrows()],
    )


def explore_html(model_id: str, recipe: Recipe, mode: str) -> str:
    """The report of one Explore view: its four numbers, every chart and the notes."""
    res = cache.result(model_id, recipe, mode)
    pin = {"model": model_id, "recipe": recipe.to_json(), "label": state.recipe_text(recipe)}
    df, _ = views.compare_frame([pin], mode)
    table = views.side_by_side(df)
    rows = [artefact_row(df["pin"].iloc[0], model_id, recipe.to_json(), mode)]
    notes = [*views.notes_of(df), *RULES]
    title = f"PruneScope: {catalogue.spec(model_id).name} · {state.recipe_text(recipe)}"
    return report.build_report(
        title,
        table,
        views.explore_figures(model_id, recipe, mode, res),
        notes,
        machine.environment(),
        rows,
        subtitle=f"evaluation: {mode}",
        results=[res],
    )


def _safe(build, *args) -> str:
    """``build(*args)``, or a small HTML page saying why it failed (never a traceback in a download)."""
    try:
        return build(*args)
    except Exception as exc:
        log.exception("report failed")
        return (
            f"<!DOCTYPE html><html><body><h1>The report could not be built</h1><p>{html.escape(str(exc))}</p>"
            "<p>Reload the page and try again; the server log has the details.</p></body></html>"
        )


def download_button(where: str, build, *args, file_name: str) -> None:
    """A download button that builds the report only when pressed."""
    st.download_button(
        "Download report (HTML)",
        lambda: _safe(build, *args).encode(),
        file_name,
        mime="text/html",
        key=state.B_REPORT.format(where),
        on_click="ignore",
        icon=":material/summarize:",
        width="stretch",
        help="One self-contained HTML file: side-by-side numbers, every chart (interactive, opens "
        "offline), the notes on what is simulated or noisy, the environment, and each "
        "artefact's sha256 with the command that re-measures it.",
    )
