"""Real-browser fixtures: a ``streamlit run app.py`` server on a free port (healthy before the browser
connects; its process group always killed), the system Chromium (never downloaded), and helpers that
wait for Streamlit to finish a script run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


@contextmanager
def streamlit_server(workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """``streamlit run app.py`` with its own cache dir under ``workdir``; yields the base URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "streamlit.log"
    env = {**os.environ, "COMPRESS_CACHE_DIR": str(workdir / "cache"), "PRUNESCOPE_OFFLINE": "1", **(extra_env or {})}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
