"""One real-browser smoke test: the dashboard serves, the sparsity slider moves the metric cards.

Starts ``streamlit run app.py`` on a free port, polls ``/_stcore/health``, drives the slider with
Playwright on the system Chromium (never downloaded), saves a screenshot under the test's tmp dir
and copies it to ``screenshots/explore.png`` (gitignored). The server is always killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 90
RERUN_TIMEOUT_MS = 60_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:  # noqa: S310 (localhost)
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "streamlit.log"
    env = {**os.environ, "COMPRESS_CACHE_DIR": str(tmp_path / "cache"), "PRUNESCOPE_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _wait_idle(page) -> None:
    """Wait until Streamlit has no script run in flight (the running indicator is gone)."""
    page.wait_for_timeout(300)
    idle = "[data-testid=\"stApp\"][data-test-script-state=\"notRunning\"]"
    page.wait_for_function(f"() => !!document.querySelector('{idle}')", timeout=RERUN_TIMEOUT_MS)


@pytest.fixture
def chromium() -> Path:
    """The system Chromium; skipped when absent, unless CI demands it (PRUNESCOPE_REQUIRE_BROWSER=1)."""
    if not CHROMIUM.exists():
        reason = f"needs the system Chromium at {CHROMIUM} (apt-get install chromium); no browser is downloaded"
        if os.environ.get("PRUNESCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


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
                arg=before, timeout=RERUN_TIMEOUT_MS)
            _wait_idle(page)
            page.wait_for_timeout(4000)  # let the background curve fill a few points
            _wait_idle(page)
            after = values.all_inner_texts()
            assert after[1] != before[1], "non-zero parameters did not change after moving the slider"
            assert thumb.input_value() == "70"
            assert page.get_by_text("Simulated or estimated", exact=False).count() >= 1

            shot = tmp_path / "explore.png"
            page.screenshot(path=str(shot))  # the tall viewport holds the whole page (Streamlit scrolls inside)
            (ROOT / "screenshots").mkdir(exist_ok=True)
            shutil.copyfile(shot, ROOT / "screenshots" / "explore.png")
        finally:
            browser.close()
