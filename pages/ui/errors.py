"""Errors as messages, never tracebacks.

``guard()`` wraps a page body: compress_core raises ``ValueError`` / ``MissingFileError`` with
messages written for users, so those are shown as they are; anything else is logged with its
traceback on the server and shown as a short ``st.error`` with what to try. Streamlit's own
control flow (``st.rerun``, ``st.stop``) derives from ``BaseException`` and passes through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st

from compress_core.base.paths import MissingFileError

log = logging.getLogger("prunescope.app")


def message_for(exc: BaseException) -> str:
    """What the user reads: the core's own message for input/data problems, a hint for the rest."""
    if isinstance(exc, MissingFileError):
        return f"A file this needs is missing. {exc}"
    if isinstance(exc, ValueError):
        return f"{exc}"
    if isinstance(exc, MemoryError):
        return "Out of memory: try the quick evaluation or a smaller model."
    return (
        f"Something went wrong ({type(exc).__name__}: {exc}). Try another recipe or reload the page; "
        "the full traceback is in the server log."
    )


@contextmanager
def guard(what: str = "this page", reset: Callable[[], None] | None = None) -> Iterator[None]:
    """Show any exception raised inside as an ``st.error``; unexpected ones are logged with their
    traceback on the server. ``reset`` (a callback) adds a button that puts things right."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, ValueError | MissingFileError):
            log.info("%s: %s", what, exc)
        else:
            log.exception("error while rendering %s", what)
        st.error(message_for(exc), icon=":material/error:")
        if reset is not None:
            st.button("Reset to the default recipe", on_click=reset, icon=":material/restart_alt:")
