"""What every command shares: the parser that exits with one line on stderr (status 2, no usage dump), the
argument types, the registries' keys as choices, and the progress bar on stderr."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from compress_core.cli.models import CliError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, status 2, no usage dump
        raise CliError(message)


def keys(registry: Iterable[str]) -> tuple[str, ...]:
    """A registry's keys in registration order, as argparse choices: the CLI never spells a key list itself."""
    return tuple(registry)


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sparsity must be a number like 0.5; got {text!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 0.99:
        raise argparse.ArgumentTypeError(f"sparsity must be a fraction between 0 and 0.99; got {text}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)


def progress_bar(desc: str) -> tuple[Any, Callable[[float, str], None]]:
    """A tqdm bar on stderr and the ``progress(fraction, message)`` callback that moves it."""
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc=desc, file=sys.stderr, leave=False, bar_format="{l_bar}{bar}| {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message)
        bar.refresh()

    return bar, update
