"""The Sweep charts hold every stored row of the model, not only the grid just run: the grid's points are drawn
apart from rows other sweeps stored earlier, with a legend entry and a caption that counts both."""

from __future__ import annotations

import base64
import json

from .conftest import new_app, texts
from .test_pages import _open, _submit

EARLIER = "stored earlier (not this grid)"


def _sweep(at, sparsities: list[float]) -> None:
    at.multiselect(key="sweep_sparsities").set_value(sparsities)
    at.multiselect(key="sweep_bits").set_value([32])
    _submit(at, "Run sweep")
    assert not at.exception and not at.error, texts(at.error)


def _count(values: list | dict) -> int:
    """How many values a plotly trace's ``x`` holds (a list, or a typed array as base64 ``bdata``)."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // int(values["dtype"][1:])
    return len(values)


def _trace_sizes(at) -> list[dict[str, int]]:
    """Per chart: legend name -> number of points."""
    out = []
    for chart in at.get("plotly_chart"):
        fig = json.loads(chart.proto.spec)
        out.append({t.get("name", ""): _count(t.get("x", [])) for t in fig["data"] if t.get("mode") == "markers"})
    return out


def test_the_grid_just_run_is_drawn_apart_from_rows_stored_earlier(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path))  # a results store of its own: other tests' rows stay out
    first = _open(new_app().run(), "pages/sweep.py")
    _sweep(first, [0.0, 0.5])  # another user's (or an earlier) sweep: at least 2 rows in the store
    at = _open(new_app().run(), "pages/sweep.py")
    assert "from every sweep run so far" in texts(at.caption)  # nothing run in this session: all rows, said so
    _sweep(at, [0.25, 0.75, 0.9])
    stored = len(at.dataframe[0].value)
    charts = _trace_sizes(at)
    assert stored == 5 and charts and all(c.get(EARLIER) == 2 for c in charts)
    assert all(sum(n for name, n in c.items() if name != EARLIER) == 3 for c in charts)
    note = f"3 point(s) are the grid you just ran; the other {stored - 3}, faded, were stored earlier"
    assert note in texts(at.caption)
