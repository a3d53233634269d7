"""Command line: ``python -m compress_core {models,evaluate,sweep,solve,train}``.

Bad input exits with status 2 and one clear line on stderr, never a traceback. With ``--json``,
``evaluate`` prints exactly one JSON object on stdout (progress goes to stderr). Each command's parser and
code live in its own module (``zoo``: models and train, ``evaluate``, ``sweep``, ``solve``); this one joins them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from compress_core.cli.common import Parser, positive_int
from compress_core.cli.evaluate import add_evaluate_parser, cmd_evaluate
from compress_core.cli.models import CliError
from compress_core.cli.solve import add_solve_parser, cmd_solve
from compress_core.cli.sweep import add_sweep_parser, cmd_sweep
from compress_core.cli.zoo import add_models_parser, add_train_parser, cmd_models, cmd_train


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m compress_core", description="Prune, quantize and measure real models.")
    parser.add_argument("--threads", type=positive_int, help="torch threads (default: PRUNESCOPE_THREADS or 2)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_models_parser(sub)
    add_evaluate_parser(sub)
    add_sweep_parser(sub)
    add_solve_parser(sub)
    add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from compress_core.base.paths import MissingFileError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        from compress_core.base.threads import configure_threads

        configure_threads(args.threads)
        commands = {"models": cmd_models, "evaluate": cmd_evaluate, "sweep": cmd_sweep, "solve": cmd_solve}
        return {**commands, "train": cmd_train}[args.command](args)
    except (CliError, ValueError, MissingFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.strerror or exc} {getattr(exc, 'filename', '') or ''}".rstrip(), file=sys.stderr)
        return 2


def console() -> None:
    """The ``prunescope`` command (installed by ``pip install -e .``): ``python -m compress_core``."""
    sys.exit(main())
