"""The real-browser smoke test: the dashboard serves, the sparsity slider moves the metric cards.

The server and Chromium come from ``conftest.py``; the screenshot goes to the test's tmp dir and
``screenshots/explore.png`` (gitignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import CHROMIUM_ARGS, RERUN_TIMEOUT_MS, save_screenshot
from .conftest import wait_idle as _wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_sparsity_slider_changes_metrics_in_a_real_browser(chromium: Path, server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 2300})
            page.goto(server, wait_until="domcontentloaded")
            values = page.locator('[data-testid="stMetricValue"]')
            values.nth(3).wait_for(timeout=RERUN_TIMEOUT_MS)
            _wait_idle(page)
            before = values.all_inner_texts()
            assert len(before) == 4, before

            thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
            thumb.focus()
            for _ in range(14):  # 0 % -> 70 % in steps of 5
                thumb.press("ArrowRight")
            page.wait_for_function(
                "(before) => { const v = [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                ".map(e => e.innerText); return v.length === 4 && v[1] !== before[1]; }",
                arg=before,
                timeout=RERUN_TIMEOUT_MS,
            )
            _wait_idle(page)
            page.wait_for_timeout(4000)  # let the background curve fill a few points
            _wait_idle(page)
            after = values.all_inner_texts()
            assert after[1] != before[1], "non-zero parameters did not change after moving the slider"
            assert thumb.input_value() == "70"
            assert page.get_by_text("Simulated or estimated", exact=False).count() >= 1

            save_screenshot(page, tmp_path, "explore.png")
        finally:
            browser.close()
