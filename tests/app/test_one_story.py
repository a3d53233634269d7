"""One story on every page: the latency card's speed-up is that of the numbers it shows, every latency
names its runtime, threads and batch, a noisy one is marked wherever it leads, and the runtime selector's
entries fit their box."""

from __future__ import annotations

import pandas as pd

from compress_core.base import timing
from compress_core.base.recipe import PruneSpec, Recipe
from pages.ui import runtime_panel

from .conftest import new_app, texts


def _struct(sparsity: float) -> str:
    """A structure of its own per test (none another AppTest uses): latencies are cached per structure for the
    process's life, so a faked timing must not meet another test's structure."""
    return Recipe(PruneSpec("structured", "l1", "layer", sparsity)).to_json()


CARD = "Latency p50 · PyTorch eager"


def _paired(cand_ms: float, base_ms: float, fastest: float, load: float = 0.2):
    """Medians ``cand_ms`` / ``base_ms`` with a fastest-call speed-up ``fastest`` that disagrees with them.
    The Workbenches are dropped first: latencies are cached per structure, and another test may have timed it."""
    from pages.ui import cache

    cache.workbench.clear()

    def paired(candidate, baseline, budget_s=0.3, checkpoint=None, **_):
        ratios = [base_ms / cand_ms] * 7
        return timing.summarise([cand_ms] * 7, [base_ms] * 7, ratios, 1, load, 2, speedup=fastest)

    return paired


def _card(at) -> tuple[str, str]:
    m = next(m for m in at.metric if m.label == CARD)
    return m.value, m.delta


def test_the_latency_card_speedup_is_the_ratio_of_the_medians_it_shows(monkeypatch):
    # the bug: "2.81 ms vs dense 2.34 ms" labelled "1.04× faster" (a fastest-call ratio beside two medians)
    monkeypatch.setattr(timing, "paired", _paired(2.81, 2.34, 1.04))
    at = new_app(recipe=_struct(0.4)).run()
    assert not at.exception and not at.error, texts(at.error)
    value, delta = _card(at)
    assert value == "2.81 ms" and delta == f"{2.81 / 2.34:.2f}× slower vs dense"
    captions = texts(at.caption)
    assert "dense 2.34 ms in the same window" in captions and "PyTorch eager · 2 threads · batch 1" in captions
    assert "1.04" not in captions and "faster" not in delta


def test_a_noisy_latency_is_marked_on_the_card_and_in_compare(monkeypatch):
    monkeypatch.setattr(timing, "paired", _paired(1.0, 2.0, 2.0, load=7.5))
    at = new_app(recipe=_struct(0.3)).run()
    assert _card(at)[1] == "noisy · 2.00× faster vs dense"
    at.button(key="b_pin").click().run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not at.error, texts(at.error)
    table = at.dataframe[0].value.set_index("measure")
    pin = table.columns[0]
    assert table.loc["latency p50 (runtime · threads · batch)", pin].endswith(
        "PyTorch eager · 2 threads · batch 1 · noisy"
    )
    assert table.loc["speed-up vs dense (dense ÷ this)", pin].startswith("2.00× faster: dense 2 ms ÷ 1 ms (noisy)")
    from pages.ui import report_panel  # the HTML report is built from the same rows (the same cached result)

    html = report_panel.compare_html(at.session_state["pins"], "quick")
    assert "PyTorch eager · 2 threads · batch 1 · noisy" in html and "2.00× faster: dense 2 ms ÷ 1 ms (noisy)" in html


def test_why_not_faster_names_the_runtime_it_explains(monkeypatch):
    monkeypatch.setattr(timing, "paired", _paired(2.0, 2.0, 1.0))
    at = new_app(recipe=_struct(0.2)).run()
    assert not at.exception and not at.error, texts(at.error)
    note = next(c.value for c in at.caption if "Why not faster" in c.value)
    assert "Why not faster on PyTorch eager · 2 threads · batch 1:" in note


def test_the_runtime_selector_entries_are_short_and_the_reasons_are_below(app):
    box = app.selectbox(key="w_runtime")
    labels = [runtime_panel.option_label(k, False) for k in box.options]
    assert all(len(x) <= 20 for x in box.options), box.options
    assert all(len(x) <= 20 for x in labels)
    if any(" · n/a" in o for o in box.options):
        assert "n/a here:" in texts(app.caption)


def test_staircase_stops_are_only_real_speedups_and_noisy_ones_are_marked():
    df = pd.DataFrame(
        {
            "fraction_kept": [1.0, 0.75, 0.5, 0.25],
            "sparsity": [0.0, 0.25, 0.5, 0.75],
            "latency_ms_p50": [4.0, 3.6, 1.9, 1.5],  # 3.6 is a step down from 4.0 but slower than dense 2.0
            "dense_latency_ms_p50": [2.0, 2.0, 2.0, 2.0],
            "speedup": [1.0, 1.8, 1.9, 2.6],  # fastest-call ratios that disagree with the medians
            "latency_noisy": [False, False, False, True],
        }
    )
    assert runtime_panel.speed_stops(df) == [(50, 2.0 / 1.9, False), (75, 2.0 / 1.5, True)]


def test_compare_fits_four_pins_on_screen():
    import json

    from pages.ui import compare_panel

    at = new_app().run()
    at.session_state["pins"] = [
        {"model": "lenet5-mnist", "recipe": _struct(s), "label": f"structured l1 layer {s:.0%}"}
        for s in (0.4, 0.3, 0.2, 0.0)
    ]
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not at.error, texts(at.error)
    table = at.dataframe[0]
    widths = {k: v.get("width") for k, v in json.loads(table.proto.columns).items() if k != "_index"}
    assert len(widths) == 5 and all(isinstance(w, int) for w in widths.values()), widths  # measure + 4 pins
    assert sum(widths.values()) <= compare_panel.MAIN_PX  # none off to the right


def test_a_stop_that_would_read_1_00x_faster_is_not_offered():
    """A step down whose speed-up over dense rounds to 1.00× (seen in the browser: "Snap to 75 % (1.00× faster ·
    noisy)") is no speed-up a user can see: a stop is at least 5 % faster than dense."""
    df = pd.DataFrame(
        {
            "fraction_kept": [1.0, 0.5],
            "sparsity": [0.0, 0.5],
            "latency_ms_p50": [2.3, 1.99],  # a 13 % step down, but only 2.0 / 1.99 = 1.005x dense
            "dense_latency_ms_p50": [2.0, 2.0],
            "latency_noisy": [False, True],
        }
    )
    assert runtime_panel.speed_stops(df) == []
