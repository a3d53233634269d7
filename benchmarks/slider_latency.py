"""How fast does Explore refresh after a slider move, and how much does a busy machine move the speed-up?
Prints markdown tables, the CPU model line first (not a test).

1. AppTest: opens Explore on a model, moves the sparsity slider to N values it has not visited (every
   move measures a new recipe) and times each ``AppTest.run()`` (cards, notes and all charts).
   Targets: p50 <= 0.3 s on lenet5-mnist, <= 1.5 s on resnet20-cifar10 (quick eval).
2. Chromium, as a user meets it (``--browser``): ``streamlit run app.py``, Explore on ResNet-56, the
   background curve fill left running; each move drags the slider with the mouse to a sparsity not
   visited yet and times from mouse-up until the "Non-zero parameters" card shows that recipe's count;
   then a few ±5 % steps (points the fill may have prefetched). Target: p50 <= 2 s. Once per recovery
   level (``--browser-recovery``: the model's default, BatchNorm re-estimation on the ResNets, and none,
   the work the target was set for), and per Chromium niceness (``--browser-nice``: at 10 the browser,
   which on this machine shares the server's cores, mostly yields them). Next to it, one evaluation of the
   same kind in a bare process (no server, no browser): the machine's own floor at that moment.
3. Paired timing under load (``--load``): a structured 50 % model timed against its dense baseline
   (``timing.paired``, as the dashboard does) R times on the machine as found, R times beside one
   idle-priority spinner per core (keeps the cores awake, takes no time) and R times while one busy
   process per core runs beside it, at 1 thread and at torch's default; next to it the old way (dense
   timed once, the model later). Target: the paired speed-up under load within ± 15 % of the quiet one.

ResNets run only when COMPRESS_DATA_DIR is set (weights + CIFAR-10 test set).

    python benchmarks/slider_latency.py [--moves 12] [--models lenet5-mnist resnet20-cifar10]
        [--browser resnet56-cifar10 --browser-moves 10 --browser-recovery default none --browser-nice 0 10]
        [--load resnet20-cifar10 --repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PRUNESCOPE_OFFLINE", "1")

from paired_load import load_table  # noqa: E402  (siblings: a benchmark runs as a script from benchmarks/)
from serve import streamlit_server  # noqa: E402
from streamlit.runtime.pages_manager import PagesManager  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import compress_core  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)
from compress_core.base import machine  # noqa: E402
from compress_core.base.settings import MeasureSettings  # noqa: E402

TARGETS_S = {"lenet5-mnist": 0.3, "resnet20-cifar10": 1.5, "resnet56-cifar10": 2.0}
# Sparsities in percent, in an order that jumps around; none is visited twice.
VALUES_PCT = [35, 70, 15, 85, 55, 5, 65, 25, 90, 45, 75, 20, 95, 10, 80, 30, 60, 40, 50]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SHOWS = (
    "(want) => { const v = document.querySelectorAll('[data-testid=\"stMetricValue\"]');"
    " return v.length === 4 && v[1].innerText === want; }"
)  # the non-zero-parameters card shows ``want``


def warm_server_navigation() -> None:
    """AppTest starts every run in Streamlit's legacy pages/ mode, which a running server leaves after
    its first ``st.navigation`` call; without this each timed run would also bounce through app.py."""
    original = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# -- 1. AppTest ---------------------------------------------------------------------------------------
def measure(model_id: str, moves: int) -> dict:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params["model"] = model_id
    t0 = time.perf_counter()
    at.run()
    first_s = time.perf_counter() - t0
    if at.exception or at.error:
        raise SystemExit(f"{model_id}: the app failed to open: {at.exception or [e.value for e in at.error]}")
    times, changed = [], 0
    before = [m.value for m in at.metric]
    for pct in VALUES_PCT[:moves]:
        t0 = time.perf_counter()
        at.slider(key="w_sparsity_pct").set_value(pct).run()
        times.append(time.perf_counter() - t0)
        now = [m.value for m in at.metric]
        changed += now != before
        before = now
        if at.exception or at.error:
            raise SystemExit(f"{model_id} at {pct} %: {at.exception or [e.value for e in at.error]}")
    t0 = time.perf_counter()
    at.slider(key="w_sparsity_pct").set_value(VALUES_PCT[0]).run()  # back to a visited value: cached
    revisit_s = time.perf_counter() - t0
    return {
        "model": model_id,
        "moves": len(times),
        "changed": changed,
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "max": max(times),
        "revisit": revisit_s,
        "first": first_s,
    }


def print_apptest(rows: list[dict]) -> None:
    import torch

    print(
        f"Explore slider latency: AppTest full rerun after each move, quick eval (1,000 images), "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n"
    )
    print(
        "| model | moves | metrics changed | p50 (s) | p95 (s) | max (s) | target p50 (s) | revisit (s) | "
        "first open (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        target = TARGETS_S.get(r["model"])
        mark = "" if target is None else (" ✓" if r["p50"] <= target else " ✗")
        print(
            f"| {r['model']} | {r['moves']} | {r['changed']} | {r['p50']:.3f}{mark} | {r['p95']:.3f} | "
            f"{r['max']:.3f} | {target if target is not None else '–'} | {r['revisit']:.3f} | {r['first']:.1f} |"
        )
    print()


# -- 2. Chromium, background fill running --------------------------------------------------------------
def _expected_nonzero(model_id: str, pcts: list[int]) -> dict[int, str]:
    """What the "Non-zero parameters" card must show for each slider position (default recipe)."""
    from compress_core.bench.workbench import Workbench
    from compress_core.engine import measure as m

    wb = Workbench(model_id)
    out = {}
    for pct in pcts:
        comp = wb.compress(_move_recipe(pct, "none"))  # the count does not depend on recovery
        out[pct] = f"{m.count_params(comp.float_model)[1]:,}"
    return out


def _drag_slider(page, pct: int, max_pct: int = 95) -> None:
    """Drag the sparsity slider's thumb to ``pct`` with the mouse and let go: one move, as a user makes it."""
    slider = page.locator('[data-testid="stSlider"]').first
    box = slider.locator('[role="group"] > div').first.bounding_box()
    thumb = slider.locator('input[type="range"]').locator("..").bounding_box()
    y = thumb["y"] + thumb["height"] / 2
    page.mouse.move(thumb["x"] + thumb["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * pct / max_pct, y, steps=8)
    page.mouse.up()


def _move_recipe(pct: int, recovery: str):
    """The recipe of one slider move on Explore's default method, with ``recovery``."""
    from compress_core.base.recipe import PruneSpec, Recipe

    return Recipe(PruneSpec("unstructured", "l1", "global", pct / 100), recovery=recovery)


def _default_recovery(model_id: str) -> str:
    from compress_core.bench.workbench import Workbench
    from compress_core.engine import recover

    return recover.default_level(Workbench(model_id).model)


def _chromium(nice: int, folder: Path) -> str:
    """Chromium's path, or at ``nice`` > 0 a wrapper that starts it at that niceness: the browser's rendering
    then yields the 2 cores to the server, as a browser on the user's own machine takes nothing from it."""
    if nice <= 0:
        return CHROMIUM
    wrapper = folder / "chromium-nice"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n {nice} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def browser_moves(model_id: str, moves: int, recovery: str, nice: int = 0) -> dict:
    import tempfile
    import urllib.parse

    from playwright.sync_api import sync_playwright

    targets = VALUES_PCT[:moves]
    steps = [targets[-1] + 5 * k for k in (1, 2, 1, 0) if 0 <= targets[-1] + 5 * k <= 95]  # +5, +10, +5, 0
    expected = _expected_nonzero(model_id, [*targets, *steps])
    folder = Path(tempfile.mkdtemp(prefix="slider-bench-"))
    times, step_times = [], []
    with streamlit_server(folder) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(nice, folder), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        t0 = time.perf_counter()
        # Open on a compressed recipe with the level (a dense one shows the model's default recovery)
        # that no move visits.
        first = next((p for p in reversed(VALUES_PCT) if p not in expected), 0)
        start = urllib.parse.quote(_move_recipe(first, recovery).to_json())
        page.goto(f"{url}/?model={model_id}&recipe={start}", wait_until="domcontentloaded")
        cards = page.locator('[data-testid="stMetricValue"]')
        cards.nth(3).wait_for(timeout=600_000)
        first_s = time.perf_counter() - t0
        page.wait_for_timeout(4000)  # the background fill is running now
        for i, pct in enumerate([*targets, *steps]):
            _drag_slider(page, pct)
            t0 = time.perf_counter()
            page.wait_for_function(SHOWS, arg=expected[pct], timeout=300_000)
            (times if i < len(targets) else step_times).append(time.perf_counter() - t0)
            page.wait_for_timeout(1500)  # the user reads the cards; the fill carries on
        browser.close()
    return {
        "model": model_id,
        "recovery": recovery,
        "nice": nice,
        "moves": len(times),
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "max": max(times),
        "first": first_s,
        "alone": _evaluate_alone(model_id, recovery),
        "load": os.getloadavg()[0],
        "steps": step_times,
    }


def _evaluate_alone(model_id: str, recovery: str, n: int = 3) -> float:
    """Median seconds of ``Workbench.evaluate`` on unvisited recipes with the moves' recovery in this process,
    no server, no browser: the machine's floor for one move at this moment. Like a move, without the one-shot
    accuracy (Explore measures that after the cards) and with the dense statistics BN recovery needs computed
    once beforehand (Explore does that while the model loads)."""
    from compress_core.bench.workbench import Workbench
    from compress_core.engine.recover.bn import dense_statistics

    wb = Workbench(model_id)
    wb.evaluate(_move_recipe(0, "none"), MeasureSettings(budget_s=0.2))
    if recovery == "bn":
        dense_statistics(wb.model, wb.recovery_images())
    times = []
    for pct in (12, 37, 62)[:n]:
        t0 = time.perf_counter()
        wb.evaluate(_move_recipe(pct, recovery), MeasureSettings(budget_s=0.2), oneshot=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def print_browser(rows: list[dict]) -> None:
    print(
        "Explore in Chromium with the background curve fill running: mouse-up after dragging the sparsity slider "
        "-> the non-zero-parameters card shows the new recipe (all four cards arrive together; jumps to unvisited "
        "sparsities, quick eval: 1,000 test images), per post-training recovery level\n"
    )
    print(
        "| model | recovery | browser nice | moves | p50 (s) | p95 (s) | max (s) | target p50 (s) | first open (s) | "
        "evaluate alone (s) | load avg |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        target = TARGETS_S.get(r["model"], 2.0)
        mark = " ✓" if r["p50"] <= target else " ✗"
        print(
            f"| {r['model']} | {r['recovery']} | {r['nice']} | {r['moves']} | {r['p50']:.2f}{mark} | {r['p95']:.2f} | "
            f"{r['max']:.2f} | {target} | {r['first']:.1f} | {r['alone']:.2f} | {r['load']:.1f} |"
        )
        if r["steps"]:
            s = r["steps"]
            print(
                f"| {r['model']}, 5 % steps and revisits | {r['recovery']} | {r['nice']} | {len(s)} | "
                f"{statistics.median(s):.2f} | "
                f"{percentile(s, 0.95):.2f} | {max(s):.2f} | {target} | – | – | – |"
            )
    print()
    print(
        "'evaluate alone': one new recipe with the same recovery measured in a bare Python process right after "
        "(no server, no browser, no one-shot accuracy): what this machine needs for the move's work at this load. "
        "'browser nice': Chromium's niceness; at 0 it competes with the server for the same cores (here it took "
        "~50 % of a core while a move rendered), at 10 it mostly yields, as a browser on another machine would.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=12, help=f"slider moves per model (max {len(VALUES_PCT)})")
    parser.add_argument("--models", nargs="*", default=["lenet5-mnist", "resnet20-cifar10"])
    parser.add_argument("--browser", nargs="*", default=["resnet56-cifar10"], help="models to time in Chromium")
    parser.add_argument("--browser-moves", type=int, default=10)
    parser.add_argument(
        "--browser-recovery",
        nargs="+",
        default=["default", "none"],
        choices=["default", "none", "bn", "reconstruct"],
        help="recovery levels to time in Chromium ('default': the model's own, as Explore opens it)",
    )
    parser.add_argument(
        "--browser-nice", nargs="+", type=int, default=[0], help="Chromium niceness per run (0: as launched)"
    )
    parser.add_argument("--load", nargs="*", default=["resnet20-cifar10"], help="models for the paired-timing table")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per paired measurement")
    args = parser.parse_args()
    if not 1 <= args.moves <= len(VALUES_PCT) or not 1 <= args.browser_moves <= len(VALUES_PCT):
        parser.error(f"moves must be between 1 and {len(VALUES_PCT)}")

    def usable(model_id: str) -> bool:
        if model_id.startswith("resnet") and not os.environ.get("COMPRESS_DATA_DIR"):
            print(
                f"skipping {model_id}: set COMPRESS_DATA_DIR to a folder with its weights and CIFAR-10", file=sys.stderr
            )
            return False
        return True

    print(machine.machine_line() + "\n")
    warm_server_navigation()
    rows = [measure(m, args.moves) for m in args.models if usable(m)]
    if rows:
        print_apptest(rows)
    for model_id in filter(usable, args.browser):
        if not Path(CHROMIUM).exists():
            print(f"skipping the browser run: no Chromium at {CHROMIUM}", file=sys.stderr)
            break
        levels = dict.fromkeys(_default_recovery(model_id) if r == "default" else r for r in args.browser_recovery)
        print_browser(
            [browser_moves(model_id, args.browser_moves, lv, nice) for lv in levels for nice in args.browser_nice]
        )
    for model_id in filter(usable, args.load):
        load_table(model_id, args.repeats, args.budget)


if __name__ == "__main__":
    main()
