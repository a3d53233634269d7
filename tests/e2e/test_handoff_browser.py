"""Sensitivity -> Explore in a real browser: per-layer ratios arrive with the model they were measured on.

The bug (issue "One story on every page", item 1): a session opened on a deep link to Sensitivity with a
model other than the default ran the analysis, and "Use as per-layer ratios" opened Explore on the default
model (``st.switch_page`` clears the URL and the sidebar's picker went back to LeNet-5), so the ratios named
layers Explore's model did not have, or the picker's change callback dropped them. LeNet-300-100 with one
sparsity and no recovery keeps the analysis to a few seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import RERUN_TIMEOUT_MS, save_screenshot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
METRICS = '[data-testid="stMetricValue"]'


def _analyse_one_sparsity(page) -> None:
    """One sparsity (50 %), no recovery: three layers, three evaluations."""
    form = page.locator('[data-testid="stForm"]')
    for chip in ("25%", "75%", "90%"):  # keep 50 % only
        form.get_by_role("button", name=f"Remove {chip}").first.click()
    form.get_by_text("None (one-shot)").click()
    form.get_by_role("button", name="Analyse").click()


def test_ratios_open_explore_on_the_model_they_were_measured_on(browser, server: str, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    try:
        page.goto(f"{server}/sensitivity?model=lenet300-mnist", wait_until="domcontentloaded")
        page.get_by_role("button", name="Analyse").wait_for(timeout=RERUN_TIMEOUT_MS)
        wait_idle(page)
        _analyse_one_sparsity(page)
        use = page.get_by_role("button", name="Use as per-layer ratios in Explore")
        use.wait_for(timeout=RERUN_TIMEOUT_MS)
        wait_idle(page)
        use.click()
        page.get_by_role("heading", name="Explore").first.wait_for(timeout=RERUN_TIMEOUT_MS)
        page.locator(METRICS).nth(3).wait_for(timeout=RERUN_TIMEOUT_MS)
        wait_idle(page, settle_ms=1500)

        main = page.locator('[data-testid="stMain"]').inner_text()
        picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
        shown = picker.text_content() + " " + " ".join(i.input_value() for i in picker.locator("input").all())
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        assert "not prunable here" not in main, main[:1500]
        assert "LeNet-300-100 (MNIST)" in main, main[:1500]  # the recipe summary names the model
        assert re.search(r"per-layer ratios \(3 layers", main), main[:1500]
        assert "LeNet-300-100" in shown and "LeNet-5" not in shown, shown  # the picker and its caption agree
        assert "266,610 parameters" in sidebar, sidebar[:800]
        assert "model=lenet300-mnist" in page.url and "layer_sparsity%22%3A%5B%5B%22fc1" in page.url, page.url
        save_screenshot(page, tmp_path, "handoff_explore.png")
    finally:
        context.close()
