"""AppTest fixtures: the real app on the bundled LeNet-5 (fast, no data dir needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TIMEOUT_S = 180
ORIGINAL_PAGES_INIT = PagesManager.__init__  # first run loads torch, data and the model on a busy 2-core machine


@pytest.fixture(autouse=True)
def warm_server_navigation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every AppTest run behave like a running server's.

    With a ``pages/`` folder beside app.py, Streamlit runs in its legacy multipage mode until the
    first ``st.navigation`` call of the process; a real server pays that once, but AppTest resets it
    before every run, so each run after the first would execute the page file alone (each page's
    ``routes.require_router`` then reruns through app.py, which drops one-shot button clicks). The
    first-run path itself is covered by ``test_shell.test_a_deep_link_on_a_fresh_server_...``.
    """

    def init(self, *args, **kwargs) -> None:
        ORIGINAL_PAGES_INIT(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def new_app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    for key, value in query.items():
        at.query_params[key] = value
    return at


@pytest.fixture
def app() -> AppTest:
    """A fresh session on Explore with the default recipe, already run once."""
    at = new_app().run()
    assert not at.exception, at.exception
    return at


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def url_recipe(at: AppTest) -> dict:
    return json.loads(at.query_params["recipe"])


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)
