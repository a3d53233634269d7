"""``python -m compress_core solve``: the best recipe under a budget, verified, as one JSON object.

Registered by ``compress_core.cli.main`` (``add_solve_parser`` / ``cmd_solve``). Bad input, and a budget nothing
in the search space meets, exit with status 2 and one line on stderr (``cli.main`` prints ValueErrors).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from compress_core.base.records import EVAL_MODES
from compress_core.cli.common import keys
from compress_core.engine.prune.criteria import CRITERIA
from compress_core.engine.recover import LEVELS

_SKIP_IN_JSON = ("uniform_rows",)  # the whole grid: the dashboard's chart reads it, the CLI leaves it out


def _number(kind: type, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a {kind.__name__} number; got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{what} must be positive; got {text}")
        return value

    return parse


def _drop(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-drop-pp must be a number of percentage points; got {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"--max-drop-pp must be between 0 and 100 percentage points; got {text}")
    return value


def add_solve_parser(sub: Any) -> None:
    p = sub.add_parser("solve", help="the most accurate recipe under a size / latency / MACs / accuracy budget")
    p.add_argument("--model", default="lenet5-mnist")
    b = p.add_argument_group("budget (at least one limit)")
    b.add_argument("--max-size-bytes", type=_number(int, "--max-size-bytes"), help="artefact file size limit")
    b.add_argument("--max-latency-ms", type=_number(float, "--max-latency-ms"), help="median latency limit")
    b.add_argument("--runtime", default="torch", help="runtime the latency is measured on (default torch)")
    b.add_argument("--batch", type=_number(int, "--batch"), default=1, help="latency batch size (default 1)")
    b.add_argument("--max-macs", type=_number(int, "--max-macs"), help="MACs per sample limit")
    b.add_argument("--max-drop-pp", type=_drop, help="accuracy drop limit, percentage points below dense")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="measure the uniform grid and the candidates as Ray tasks "
        "(local, auto, HOST:6379 or ray://HOST:10001; pip install -e '.[ray]')",
    )
    s = p.add_argument_group("search space")
    s.add_argument("--bits-choices", default="2,3,4,8", help="per-layer bit-widths besides fp32 (comma list)")
    s.add_argument("--kinds", default="unstructured", help="pruning kinds, comma list: unstructured,structured")
    s.add_argument("--sparsities", help="per-layer sparsities besides 0, comma list (default: a grid 0.3-0.97)")
    s.add_argument("--uniform-sparsities", help="the uniform grid's sparsities besides 0 (default 0.5-0.95)")
    s.add_argument("--criterion", choices=keys(CRITERIA), default="l1")
    s.add_argument(
        "--recovery",
        choices=(*keys(LEVELS), "auto"),
        default="auto",
        help="auto: bn where the model has BatchNorm, else none",
    )
    p.add_argument("--eval", choices=EVAL_MODES, default="quick", help="where the answer is verified")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--save", metavar="PATH", help="write the answer's artefact here")
    p.add_argument("--store", metavar="PATH", help="results database (default: <cache dir>/results.sqlite)")
    p.add_argument("--no-store", action="store_true", help="keep nothing on disk (a repeated solve re-measures)")


def _list(text: str, kind: type, what: str) -> tuple:
    try:
        return tuple(kind(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{what} must be a comma list; got {text!r}") from None


def _inputs(args: argparse.Namespace):
    from compress_core.study.solver.budget import DEFAULT_SPARSITIES, UNIFORM_SPARSITIES, Budget, SearchSpace

    budget = Budget(
        max_size_bytes=args.max_size_bytes,
        max_latency_ms=args.max_latency_ms,
        max_macs=args.max_macs,
        max_drop_pp=args.max_drop_pp,
        runtime=args.runtime,
        batch=args.batch,
    )
    sparsities = _list(args.sparsities, float, "--sparsities") if args.sparsities else DEFAULT_SPARSITIES
    uniform = (
        _list(args.uniform_sparsities, float, "--uniform-sparsities") if args.uniform_sparsities else UNIFORM_SPARSITIES
    )
    space = SearchSpace(
        kinds=_list(args.kinds, str, "--kinds"),
        criterion=args.criterion,
        sparsities=sparsities,
        bits=_list(args.bits_choices, int, "--bits-choices"),
        recovery=args.recovery,
        uniform_sparsities=uniform,
    )
    return budget, space


def _executor(address: str | None):
    """``--ray ADDRESS``: a RayExecutor (ValueError with the install line without Ray); None: in this process."""
    if address is None:
        return None
    from compress_core.study.executors import RayExecutor, ray_missing

    missing = ray_missing()
    if missing is not None:
        raise ValueError(f"--ray needs Ray: {missing}")
    return RayExecutor(address)


def cmd_solve(args: argparse.Namespace) -> int:
    from compress_core.study.solver.solve import check_runtime, save, solve
    from compress_core.study.store import ResultStore

    budget, space = _inputs(args)
    check_runtime(budget)  # an unknown runtime fails before the model loads
    executor = _executor(args.ray)
    store = None if args.no_store else ResultStore(args.store)
    try:
        sol = solve(args.model, budget, space, mode=args.eval, store=store, progress=_progress(), executor=executor)
    finally:
        if store is not None:
            store.close()
        if executor is not None:
            executor.close()
    if not sol.feasible:
        raise ValueError("budget infeasible: " + "; ".join(sol.infeasible))
    if args.save:
        save(sol, args.save)
    out = {k: v for k, v in sol.to_dict().items() if k not in _SKIP_IN_JSON}
    if args.json:
        print(json.dumps(out, default=_plain))
        return 0
    r, u = sol.result or {}, sol.uniform_best
    print(f"recipe       {r.get('recipe_label')}")
    print(
        f"measured     accuracy {r['accuracy']:.2%}, {r['size_bytes']:,} B, {r['macs']:,} MACs, "
        f"latency {r.get('latency_ms_p50') or float('nan'):.3f} ms ({r['eval_set']})"
    )
    p = sol.predicted
    print(f"predicted    accuracy {p['accuracy']:.2%}, {p['size_bytes']:,} B")
    print(
        "uniform best "
        + (
            "none meets the budget"
            if u is None
            else f"{u['recipe_label']}: accuracy {u['accuracy']:.2%}, {u['size_bytes']:,} B"
        )
    )
    for note in sol.notes:
        print(f"note         {note}")
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON")


def _progress():
    """A stderr progress bar, created at the first report (a budget refused up front prints none)."""
    from tqdm.auto import tqdm

    bars: list = []

    def update(fraction: float, message: str) -> None:
        if not bars:
            bars.append(
                tqdm(total=100, desc="solve", file=sys.stderr, leave=False, bar_format="{l_bar}{bar}| {postfix}")
            )
        bar = bars[0]
        if round(100 * fraction) == bar.n and fraction < 1.0:
            return  # one refresh per percent
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message[:60])
        bar.refresh()
        if fraction >= 1.0:
            bar.close()

    return update
