"""A report a stakeholder can keep: one self-contained HTML file.

``build_report`` takes what a screen shows (a table, plotly figures, the honest-number notes) plus the
environment (``base.machine.environment()``) and the artefacts (name, sha256, the CLI command that re-measures
each row) and returns one HTML string. plotly.js is embedded once (``include_plotlyjs=True`` on the
first figure), so the file opens offline with every chart interactive; nothing is fetched.

Pure: no Streamlit, no computation.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go

from compress_core.present.forgets_table import flip_section

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#1f2937;padding:0 1rem}h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #e5e7eb}
.sub{color:#6b7280}table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0;width:100%}
th,td{border:1px solid #e5e7eb;padding:.35rem .5rem;text-align:left;vertical-align:top}th{background:#f3f4f6}
code{font-family:ui-monospace,monospace;font-size:.82rem;word-break:break-all}.note{color:#374151}
.noisy{color:#b45309;font-weight:600}.chart{margin:1rem 0}
"""


def cli_command(model_id: str, recipe_json: str, mode: str = "quick", batch: int = 1) -> str:
    """The shell command that measures this recipe again from the command line (``--json``)."""
    return (
        f"python -m compress_core evaluate --model {shlex.quote(model_id)} --recipe {shlex.quote(recipe_json)} "
        f"--eval {shlex.quote(mode)} --batch {int(batch)} --json"
    )


def artifact_command(filename: str, mode: str = "quick", batch: int = 1) -> str:
    """The shell command that measures the saved artefact file itself."""
    return f"python -m compress_core evaluate --artifact {shlex.quote(filename)} --eval {mode} --batch {batch} --json"


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, na_rep="–")


def _dl(facts: Mapping[str, str]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    return f"<table>{rows}</table>"


def _artefacts(rows: Sequence[Mapping]) -> str:
    if not rows:
        return "<p class='sub'>No artefacts.</p>"
    head = "<tr><th>row</th><th>artefact</th><th>sha256</th><th>re-measure</th></tr>"
    body = "".join(
        "<tr><td>{}</td><td>{}<br><span class='sub'>{}</span></td><td><code>{}</code></td>"
        "<td><code>{}</code><br><code>{}</code></td></tr>".format(
            html.escape(str(r.get("row", ""))),
            html.escape(str(r.get("file", "–"))),
            html.escape(str(r.get("size", ""))),
            html.escape(str(r.get("sha256", "–"))),
            html.escape(str(r.get("command", ""))),
            html.escape(str(r.get("artifact_command", ""))),
        )
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def _standalone(fig: go.Figure) -> go.Figure:
    """A copy styled for a page of its own: the dashboard's tight margins rely on Streamlit's theme, which
    a saved file does not have; the heading above the chart replaces its title."""
    out = go.Figure(fig)
    out.update_layout(template="plotly_white", title_text="", margin={"l": 70, "r": 30, "t": 60, "b": 70})
    out.update_xaxes(automargin=True)
    out.update_yaxes(automargin=True)
    return out


def _figures(figures: Sequence[tuple[str, go.Figure]]) -> str:
    parts = []
    for i, (title, fig) in enumerate(figures):
        div = _standalone(fig).to_html(
            full_html=False,
            include_plotlyjs=i == 0,
            config={"displaylogo": False},
            default_width="100%",
            div_id=f"chart-{i}",
        )
        parts.append(f"<div class='chart'><h3>{html.escape(title)}</h3>{div}</div>")
    return "".join(parts)


def build_report(
    title: str,
    table: pd.DataFrame,
    figures: Sequence[tuple[str, go.Figure]],
    notes: Sequence[str],
    env: Mapping[str, str],
    artefacts: Sequence[Mapping] = (),
    subtitle: str = "",
    generated_at: datetime | None = None,
    results: Sequence[Mapping] = (),
) -> str:
    """One HTML document: title, the table, every chart (interactive, plotly.js embedded once), the
    honest-number notes, the environment, and the artefact hashes with the commands that re-measure them.
    ``notes`` starting with "noisy:" are highlighted."""
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    note_items = "".join(
        f"<li class='{'noisy' if n.lower().startswith('noisy') else 'note'}'>{html.escape(n)}</li>" for n in notes
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(subtitle)} · generated {when} by PruneScope</p>"
        f"<h2>Side by side</h2>{_table(table)}"
        f"{flip_section(results)}"  # the flip table of the results that carry ``forgets`` (present.forgets_table)
        f"<h2>Charts</h2>{_figures(figures)}"
        f"<h2>Honest numbers</h2><ul>{note_items or '<li>Nothing simulated or estimated.</li>'}</ul>"
        f"<h2>Environment</h2>{_dl(env)}"
        f"<h2>Artefacts and how to re-measure them</h2>{_artefacts(artefacts)}"
        "</body></html>"
    )
