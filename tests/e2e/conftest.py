"""Real-browser fixtures: a ``streamlit run app.py`` server on a free port (``benchmarks/serve.py``, the
launcher the slider benchmark uses too: healthy before the browser connects; its process group always
killed), the system Chromium (never downloaded), and helpers that wait for Streamlit to finish a script run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks import serve

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 90
RERUN_TIMEOUT_MS = 120_000
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


@contextmanager
def streamlit_server(workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """``benchmarks/serve.py``'s launcher (the benchmark's too), failing the test if the server does not come up."""
    try:
        with serve.streamlit_server(workdir, extra_env, START_TIMEOUT_S) as url:
            yield url
    except serve.ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with streamlit_server(tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for a module's tests; each test opens its own page (its own session)."""
    with streamlit_server(tmp_path_factory.mktemp("server")) as url:
        yield url


def wait_idle(page, settle_ms: int = 300) -> None:
    """Wait until Streamlit has no script run in flight (the running indicator is gone)."""
    page.wait_for_timeout(settle_ms)
    page.wait_for_function(f"() => !!document.querySelector('{IDLE}')", timeout=RERUN_TIMEOUT_MS)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system Chromium; skipped when absent, unless CI demands it (PRUNESCOPE_REQUIRE_BROWSER=1)."""
    if not CHROMIUM.exists():
        reason = f"needs the system Chromium at {CHROMIUM} (apt-get install chromium); no browser is downloaded"
        if os.environ.get("PRUNESCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    """Screenshot into the test's tmp dir and a copy under screenshots/ (gitignored)."""
    import shutil

    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    (ROOT / "screenshots").mkdir(exist_ok=True)
    shutil.copyfile(shot, ROOT / "screenshots" / name)
    return shot
