"""The one ``streamlit run app.py`` launcher, for the browser tests (``tests/e2e/conftest.py``) and the
slider benchmark: a free port, a cache dir of its own, healthy (``/_stcore/health``) before it is handed
out, and its whole process group ended afterwards.

    with streamlit_server(folder) as url:  # http://127.0.0.1:<port>
        ...
"""

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

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 90


class ServerFailed(RuntimeError):
    """The server exited or never became healthy; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


def _command(port: int) -> list[str]:
    return [
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


def _wait_healthy(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not healthy(url):
        if proc.poll() is not None:
            raise ServerFailed(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise ServerFailed(f"streamlit not healthy after {timeout_s} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextmanager
def streamlit_server(
    workdir: Path, extra_env: dict[str, str] | None = None, timeout_s: float = START_TIMEOUT_S
) -> Iterator[str]:
    """``streamlit run app.py`` with its own cache dir under ``workdir`` (and its log,
    ``workdir/streamlit.log``); yields the base URL. Raises ``ServerFailed`` if it does not come up."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "streamlit.log"
    env = {**os.environ, "COMPRESS_CACHE_DIR": str(workdir / "cache"), "PRUNESCOPE_OFFLINE": "1", **(extra_env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            _command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_healthy(proc, url, log_path, timeout_s)
        yield url
    finally:
        _stop(proc)
