"""The stakeholder report: one self-contained HTML file with every chart, the notes, the environment
and the artefact hashes with the commands that re-measure them."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import plotly.graph_objects as go

from compress_core.base import machine
from compress_core.present import report
from tests.conftest import ROOT


def _report(**kw) -> str:
    table = pd.DataFrame({"recipe": ["dense fp32", "<b>structured</b>"], "accuracy": ["98.3 %", "23.6 %"]})
    figs = [("Bars", go.Figure([go.Bar(x=["a"], y=[1])])), ("Line", go.Figure([go.Scatter(x=[1], y=[2])]))]
    env = {"CPU": "Test CPU", "torch": "2.14.1"}
    rows = [
        {
            "row": "#1",
            "file": "lenet5-mnist-dense.psz",
            "sha256": "ab" * 32,
            "command": report.cli_command("lenet5-mnist", '{"prune":{}}'),
            "artifact_command": "x",
        }
    ]
    return report.build_report(
        "PruneScope report", table, figs, ["noisy: load 3.8 on 2 CPU(s)", "a note"], env, rows, **kw
    )


def test_the_report_is_one_offline_html_file_with_plotly_embedded_once():
    doc = _report()
    assert doc.startswith("<!DOCTYPE html>") and doc.endswith("</html>")
    assert re.findall(r'Plotly\.newPlot\(\s*"(chart-\d)"', doc) == ["chart-0", "chart-1"], "every chart is drawn"
    assert len(doc) > 1_000_000, "plotly.js itself is inside the file"
    assert doc.count("plotly.js v") <= 2, "embedded once"
    assert not re.search(r"<script[^>]+src=", doc), "no script is fetched from anywhere"


def test_the_report_escapes_text_and_carries_notes_environment_and_hashes():
    doc = _report()
    assert "&lt;b&gt;structured&lt;/b&gt;" in doc and "<b>structured</b>" not in doc
    assert "<li class='noisy'>noisy: load 3.8 on 2 CPU(s)</li>" in doc
    assert "Test CPU" in doc and "ab" * 32 in doc
    assert "python -m compress_core evaluate --model lenet5-mnist --recipe" in doc


def test_cli_command_quotes_the_recipe_for_the_shell():
    cmd = report.cli_command("resnet20-cifar10", '{"prune":{"kind":"structured"}}', "full", 1)
    assert cmd == (
        "python -m compress_core evaluate --model resnet20-cifar10 --recipe "
        '\'{"prune":{"kind":"structured"}}\' --eval full --batch 1 --json'
    )


def test_environment_names_the_cpu_its_kernel_flags_and_torch(tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n")
    env = machine.environment(str(fake))
    assert env["CPU"] == "AMD EPYC 7B13" and env["CPU flags (kernels)"] == "avx avx2 fma"
    assert env["torch"].startswith("2.") and int(env["torch threads"]) >= 1
    assert "x86" in env["int8 engine"] or "fbgemm" in env["int8 engine"] or "qnnpack" in env["int8 engine"]


def test_the_report_cli_command_really_measures_the_recipe():
    from compress_core.base.recipe import PruneSpec, Recipe

    recipe = Recipe(PruneSpec("unstructured", "l1", "global", 0.5)).to_json()
    cmd = report.cli_command("lenet5-mnist", recipe).split(" ", 1)[1]
    import shlex

    out = subprocess.run(
        [sys.executable, *shlex.split(cmd), "--no-latency"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert '"params_nonzero"' in out.stdout
