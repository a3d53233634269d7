"""The report's flip table: present when results carry ``forgets``, absent otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import torch

from compress_core.bench.forgets import forgets
from compress_core.present import report
from compress_core.present.forgets_table import FLIP_COLUMNS, flip_frame


def _results() -> list[dict]:
    labels = torch.tensor([0, 0, 1, 1])
    dense = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    comp = dense.clone()
    comp[0] = comp[0].flip(0)  # image 0: right→wrong
    return [
        {"recipe_label": "dense fp32", "forgets": forgets(dense, dense, labels).to_dict()},
        {"recipe_label": "<b>unstructured 90%</b>", "forgets": forgets(dense, comp, labels).to_dict()},
        {"recipe_label": "on openvino", "forgets": None},  # another runtime: no row
        {"recipe_label": "plain folder", "forgets": forgets(dense, comp, None).to_dict()},
    ]


def _doc(results: list[dict]) -> str:
    table = pd.DataFrame({"recipe": ["dense fp32"], "accuracy": ["98.3 %"]})
    figs = [("Bars", go.Figure([go.Bar(x=["a"], y=[1])]))]
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return report.build_report("r", table, figs, [], {"CPU": "x"}, generated_at=when, results=results)


def test_the_report_contains_the_flip_table_when_results_carry_forgets():
    doc = _doc(_results())
    assert "What the compressed models forget" in doc and "right→wrong" in doc and "Newcombe" in doc
    assert "&lt;b&gt;unstructured 90%&lt;/b&gt;" in doc and "<b>unstructured" not in doc  # escaped
    assert "1 (25.00%)" in doc and "on openvino" not in doc
    assert doc.index("What the compressed models forget") < doc.index("<h2>Charts</h2>")


def test_no_flip_table_without_forgets():
    assert "What the compressed models forget" not in _doc([{"recipe_label": "x"}])
    assert "What the compressed models forget" not in _doc([])


def test_flip_frame_has_one_row_per_result_with_forgets():
    df = flip_frame(_results())
    assert list(df.columns) == FLIP_COLUMNS and df["recipe"].iloc[0] == "dense fp32" and len(df) == 3
    assert list(df["right→wrong"]) == ["0 (0.00%)", "1 (25.00%)", "–"]
    assert list(df["agreement"]) == ["100.00%", "75.00%", "75.00%"]
