"""One story on every page, in a real browser: the latency card and the every-runtime chart print a speed-up
that is the ratio of the numbers printed beside it; the staircase offers only stops faster than dense; every
latency names its runtime, threads and batch. Screenshots land in screenshots/ (gitignored)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from compress_core.base.recipe import PruneSpec, Recipe

from .conftest import RERUN_TIMEOUT_MS, save_screenshot, wait_idle

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser]
METRICS = '[data-testid="stMetricValue"]'
STRUCT = Recipe(PruneSpec("structured", "l1", "layer", 0.5))
NUM = r"([0-9.]+)"


@pytest.fixture
def page(browser, shared_server: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.goto(f"{shared_server}/?recipe={quote(STRUCT.to_json())}", wait_until="domcontentloaded")
    page.locator(METRICS).nth(3).wait_for(timeout=RERUN_TIMEOUT_MS)
    wait_idle(page)
    yield page
    context.close()


def _ratio_agrees(shown: float, reference_ms: float, ms: float) -> bool:
    """The printed speed-up (2 decimals) is reference / ms of the printed values (3 significant digits each)."""
    return abs(shown - reference_ms / ms) <= 0.01 + 0.005 * reference_ms / ms


def test_the_latency_card_speedup_is_the_ratio_of_the_numbers_on_it(page, tmp_path):
    card = (
        page.locator('[data-testid="stColumn"]')
        .filter(has=page.locator('[data-testid="stMetricLabel"]', has_text="Latency p50"))
        .first
    )
    text = card.inner_text()
    ms = float(re.search(rf"{NUM} ms\n", text).group(1))
    dense = float(re.search(rf"dense {NUM} ms in the same window", text).group(1))
    assert "PyTorch eager · " in text and re.search(r"\d+ threads? · batch 1", text), text  # runtime, threads, batch
    words = re.search(rf"{NUM}× (faster|slower) vs dense", text)
    if words is None:
        assert "same as dense" in text and abs(dense / ms - 1) < 0.01, text
    elif words.group(2) == "faster":
        assert _ratio_agrees(float(words.group(1)), dense, ms), text
    else:  # "1.20× slower": ms over dense
        assert _ratio_agrees(float(words.group(1)), ms, dense), text
    save_screenshot(page, tmp_path, "one-story-latency-card.png")


def test_the_staircase_offers_only_speedups_and_every_runtime_chart_agrees_with_itself(page, tmp_path):
    page.locator('[data-testid="stExpander"]').filter(has_text="Runtimes: latency staircase").click()
    page.get_by_role("button", name="Measure the staircase on PyTorch eager").click()
    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text("Latency against the fraction of channels kept", timeout=RERUN_TIMEOUT_MS)
    wait_idle(page)
    for label in page.get_by_role("button", name=re.compile("^Snap to")).all_inner_texts():
        speed = float(re.search(rf"\({NUM}× faster", label).group(1))
        assert speed > 1.0, label  # a slowdown is no stop
    page.get_by_role("button", name="Measure this recipe on every runtime").click()
    bars = page.locator(".js-plotly-plot").filter(has_text="The same recipe on every runtime")
    expect(bars.locator("text.bartext").first).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    wait_idle(page)
    labels = [t for t in bars.locator("text.bartext").all_text_contents() if "vs eager" in t]
    assert labels, bars.locator("text.bartext").all_text_contents()
    for t in labels:  # "0.997 ms · 2.35× vs eager 2.34 ms"
        ms, speed, eager = (float(x) for x in re.search(rf"{NUM} ms · {NUM}× vs eager {NUM} ms", t).groups())
        assert _ratio_agrees(speed, eager, ms), t
    bars.scroll_into_view_if_needed()
    save_screenshot(page, tmp_path, "one-story-runtimes.png")
