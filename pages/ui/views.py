"""The tables and figures the pages show, built from cached results: one place, so the HTML report a
stakeholder downloads holds the very charts and numbers the screen showed.

Figures are built fresh on every call (never cached); their frames come from ``cache``.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from compress_core.base.recipe import Recipe
from compress_core.base.records import dense_file_bytes
from compress_core.bench import layers as inspect
from compress_core.present import plots
from compress_core.present.headline import headline

from . import cache, catalogue


# -- Explore ----------------------------------------------------------------------------------------
def curve_title(recipe: Recipe) -> str:
    return (
        f"Accuracy vs sparsity · {recipe.prune.kind} {recipe.prune.criterion}, "
        f"{recipe.quant.bits}-bit{' int8' if recipe.quant.int8 else ''}"
    )


def current_point(recipe: Recipe, res: dict) -> dict:
    """The accuracy card's own numbers, for the curve's red marker (fine-tuned recipes are off the curve)."""
    if recipe.finetune is None:  # on the curve: its band already shows the interval
        return {"accuracy": res["accuracy"], "label": "current"}
    return {
        "accuracy": res["accuracy"],
        "accuracy_ci_low": res["accuracy_ci_low"],
        "accuracy_ci_high": res["accuracy_ci_high"],
        "label": "current (fine-tuned)",
    }


def curve_figure(df: pd.DataFrame, recipe: Recipe, res: dict) -> go.Figure:
    return plots.accuracy_curve(
        df, recipe.prune.sparsity, res["dense_accuracy"], curve_title(recipe), current=current_point(recipe, res)
    )


def size_figure(model_id: str, recipe: Recipe, res: dict, deploy: tuple[str, int] | None = None) -> go.Figure:
    masked = cache.masked_size_bytes(model_id, recipe.to_json())
    return plots.size_breakdown(inspect.size_breakdown(res, masked, deploy))


def latency_frame(res: dict) -> pd.DataFrame:
    spread = res.get("speedup_spread")
    iqr = res.get("latency_ms_iqr") or 0.0
    return pd.DataFrame(
        [
            {
                "variant": "dense fp32",
                "latency_ms_p50": res.get("dense_latency_ms_p50"),
                "latency_ms_iqr": 0.0,
                "macs": res["dense_macs"],
                "kernels": "fp32",
            },
            {
                "variant": "this recipe" + (f" (± {spread:.0%})" if spread is not None else ""),
                "latency_ms_p50": res.get("latency_ms_p50"),
                "latency_ms_iqr": iqr,
                "macs": res["macs"],
                "kernels": res["latency_kernels"],
            },
        ]
    )


def latency_figure(res: dict) -> go.Figure:
    return plots.latency_macs(latency_frame(res))


def layers_figure(model_id: str, recipe: Recipe) -> go.Figure:
    return plots.layer_sparsity(cache.layer_frame(model_id, recipe.to_json()))


def histogram_figure(model_id: str, recipe: Recipe, layer: str | None = None) -> tuple[go.Figure, dict[str, int]]:
    hist, zeros = cache.histogram_frame(model_id, recipe.to_json(), layer)
    return plots.weight_histogram(hist), zeros


def explore_figures(model_id: str, recipe: Recipe, mode: str, res: dict) -> list[tuple[str, go.Figure]]:
    """Every chart of Explore for this recipe, titled, in page order."""
    df, _ = cache.curve_frame(model_id, recipe, mode)
    figures = [] if recipe.prune.layer_sparsity else [(curve_title(recipe), curve_figure(df, recipe, res))]
    hist, _ = histogram_figure(model_id, recipe)
    return [
        *figures,
        ("Where the bytes go", size_figure(model_id, recipe, res)),
        ("CPU latency and compute", latency_figure(res)),
        ("Sparsity per layer", layers_figure(model_id, recipe)),
        ("Weight values before and after", hist),
    ]


# -- Compare ----------------------------------------------------------------------------------------
def pin_name(i: int, pin: dict) -> str:
    """'#2 ResNet-20 (CIFAR-10) · dense fp32': unique even when one recipe is pinned on two models."""
    return f"#{i} {model_name(pin['model'])} · {pin['label']}"


def model_name(model_id: str) -> str:
    """The model's display name; its id when it is an upload the server no longer holds."""
    try:
        return catalogue.spec(model_id).name
    except ValueError:
        return model_id


def _row(i: int, pin: dict, res: dict) -> dict:
    dense_file = dense_file_bytes(res)
    spread = res.get("speedup_spread")
    return {
        "pin": pin_name(i, pin),
        "model": pin["model"],
        "recipe": pin["label"],
        "recipe_json": pin["recipe"],
        "accuracy": res["accuracy"],
        "accuracy_ci_low": res["accuracy_ci_low"],
        "accuracy_ci_high": res["accuracy_ci_high"],
        "params_nonzero": res["params_nonzero"],
        "params_removed": 1 - res["params_nonzero"] / res["dense_params"],
        "size_bytes": res["size_bytes"],
        "size_vs_dense": dense_file / res["size_bytes"],
        "latency_ms_p50": res.get("latency_ms_p50"),
        "speedup": headline(res).speedup,  # of the two medians the table shows (compress_core.present.headline)
        "latency_text": headline(res).latency_text(),
        "speed_text": headline(res).speed_text() or "not measured",
        "speedup_spread": spread,
        "latency_noisy": bool(res.get("latency_noisy")),
        "latency_note": res.get("latency_note") or "",
        "kernels": res["latency_kernels"],
        "macs": res["macs"],
        "simulated": list(res.get("simulated") or []),
        "speed_note": inspect.speed_note(res) or "",
    }


def compare_frame(pins: list[dict], mode: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per pin that could be measured (tidy, for charts and the report), and a message per pin
    that could not (e.g. an upload the server no longer holds)."""
    rows, failed = [], []
    for i, pin in enumerate(pins, start=1):
        try:
            rows.append(_row(i, pin, cache.result(pin["model"], Recipe.from_json(pin["recipe"]), mode)))
        except ValueError as exc:
            failed.append(f"#{i} {pin['label']} on {pin['model']}: {exc}")
    return pd.DataFrame(rows), failed


def _fmt_speed(r: pd.Series) -> str:
    """The headline's speed-up with the two medians it is the ratio of; ± the rounds' spread; noisy marked."""
    spread = "" if pd.isna(r["speedup_spread"]) or pd.isna(r["speedup"]) else f" · rounds ± {r['speedup_spread']:.0%}"
    return r["speed_text"] + spread


def side_by_side(df: pd.DataFrame) -> pd.DataFrame:
    """The pins as columns and the measures as rows: fits the page with up to four pins."""
    measures = {
        "model": lambda r: model_name(r["model"]),
        "recipe": lambda r: r["recipe"],
        "top-1 accuracy (95 % CI)": lambda r: (
            f"{r['accuracy']:.1%} ({r['accuracy_ci_low']:.1%}–{r['accuracy_ci_high']:.1%})"
        ),
        "non-zero parameters": lambda r: (
            f"{r['params_nonzero']:,}"
            + (" (dense)" if r["params_removed"] < 0.005 else f" (−{r['params_removed']:.0%})")
        ),
        "file size": lambda r: (
            f"{plots.human_bytes(r['size_bytes'])} ("
            + (
                "same as dense"
                if abs(r["size_vs_dense"] - 1) < 0.005
                else f"{r['size_vs_dense']:.1f}× smaller than dense"
            )
            + ")"
        ),
        "latency p50 (runtime · threads · batch)": lambda r: r["latency_text"],
        "speed-up vs dense (dense ÷ this)": _fmt_speed,
        "kernels": lambda r: r["kernels"],
        "MACs per sample": lambda r: f"{r['macs'] / 1e6:.2f} M",
    }
    out = {"measure": list(measures)}
    for _, r in df.iterrows():
        out[r["pin"]] = [f(r) for f in measures.values()]
    return pd.DataFrame(out)


def compare_figure(df: pd.DataFrame) -> go.Figure:
    long = pd.concat(
        [
            pd.DataFrame({"pin": df["pin"], "metric": "accuracy", "value": df["accuracy"] * 100, "unit": "%"}),
            pd.DataFrame({"pin": df["pin"], "metric": "file size", "value": df["size_bytes"] / 1e3, "unit": "kB"}),
            pd.DataFrame({"pin": df["pin"], "metric": "latency p50", "value": df["latency_ms_p50"], "unit": "ms"}),
            pd.DataFrame(
                {"pin": df["pin"], "metric": "non-zero params", "value": df["params_nonzero"] / 1e3, "unit": "k"}
            ),
        ],
        ignore_index=True,
    )
    return plots.compare_bars(long)


def notes_of(df: pd.DataFrame) -> list[str]:
    """The honest-number notes of every pin: what is simulated, noisy timings, why not faster."""
    notes = []
    for _, r in df.iterrows():
        if r["latency_noisy"]:
            notes.append(f"noisy: {r['pin']}: {r['latency_note']}; re-measure it on a quieter machine")
        if r["speed_note"]:
            notes.append(f"{r['pin']}: {r['speed_note']}")
        notes.extend(f"{r['pin']}: {s}" for s in r["simulated"])
    return notes
