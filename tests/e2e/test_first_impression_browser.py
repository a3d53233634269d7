"""A new user's first look, in a real browser on a fresh clone (no data folder): the model picker lists the
models that work here first and says what each of the others needs, with no entry cut off, and the runtime
selector's entries fit too. Screenshots land in screenshots/ (gitignored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import RERUN_TIMEOUT_MS, save_screenshot, streamlit_server, wait_idle

pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser]
METRICS = '[data-testid="stMetricValue"]'
# Every option's text element, with whether the browser had to cut it (ellipsis: wider than its box).
OPTIONS_JS = """() => [...document.querySelectorAll('[role="option"]')].map(o => {
  const cut = [o, ...o.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1);
  return {text: o.innerText.trim(), cut: cut};
})"""


def _options(page, selectbox, tmp_path: Path, shot: str) -> list[dict]:
    selectbox.click()
    page.locator('[role="option"]').first.wait_for(timeout=RERUN_TIMEOUT_MS)
    page.wait_for_timeout(300)
    got = page.evaluate(OPTIONS_JS)
    save_screenshot(page, tmp_path, shot)  # the list open, as the user sees it
    page.keyboard.press("Escape")
    return got


@pytest.fixture
def fresh(tmp_path: Path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    with streamlit_server(tmp_path, {"COMPRESS_DATA_DIR": str(empty)}) as url:
        yield url


def test_a_fresh_clone_lists_what_works_first_says_what_the_rest_need_and_cuts_no_entry(browser, fresh, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(fresh, wait_until="domcontentloaded")
    page.locator(METRICS).nth(3).wait_for(timeout=RERUN_TIMEOUT_MS)
    wait_idle(page)
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    models = _options(page, picker, tmp_path, "first-impression-models.png")
    texts = [o["text"] for o in models]
    assert texts[:2] == ["LeNet-5 (MNIST)", "LeNet-300-100 (MNIST)"], texts  # what works here comes first
    assert not any("weights missing" in t for t in texts), texts
    assert all("needs" in t for t in texts[2:]), texts  # each of the rest says what it needs
    assert not [o["text"] for o in models if o["cut"]], models
    runtime = page.locator('[data-testid="stSelectbox"]').filter(has_text="Runtime").first
    runtimes = _options(page, runtime, tmp_path, "first-impression-runtimes.png")
    assert len(runtimes) >= 2 and not [o["text"] for o in runtimes if o["cut"]], runtimes
    context.close()
