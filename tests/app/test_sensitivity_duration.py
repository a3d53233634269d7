"""Sensitivity states how long an analysis takes before it starts: one layer timed here, multiplied."""

from __future__ import annotations

import re

from .conftest import texts


def test_the_page_states_a_measured_duration_before_the_analysis_runs(app):
    app.switch_page("pages/sensitivity.py").run()
    assert not app.exception and not app.error, texts(app.error)
    info = texts(app.info)
    assert "minute or two" not in info  # the old promise, not measured
    assert re.search(r"This analysis takes about \d+ (s|min)", info), info
    assert "5 layers × 4 values = 20 evaluations at " in info and "(timed on fc1)" in info, info
    assert not app.get("plotly_chart"), "nothing is analysed before Analyse"

    app.multiselect(key="sens_sparsities").set_value([0.5, 0.9])
    app.button[0].click().run()  # Analyse: the estimate follows the settings submitted
    assert not app.exception and not app.error, texts(app.error)
    assert "5 layers × 2 values = 10 evaluations" in texts(app.info), texts(app.info)
    assert app.get("plotly_chart"), "the analysis ran"
