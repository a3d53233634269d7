"""Cache wrappers: one Workbench per model, shared by every session; frames for the charts.

- ``workbench`` (``st.cache_resource``): one loaded model per id, shared by every session and
  never mutated (the Workbench compresses deep copies).
- ``result`` / ``peek`` / ``remember`` / ``compressed``: thin calls into that Workbench, which owns
  the result cache (a bounded LRU that ``peek`` reads without computing, so the accuracy curve can ask
  "is this point already known?") and keeps the compressed models of expensive recipes (int8,
  structured, fine-tuned) for the per-layer views and exports.
- Frames for charts use ``st.cache_data`` (bounded); figures are never cached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.base.records import Progress
from compress_core.base.settings import MeasureSettings
from compress_core.base.threads import configure_threads
from compress_core.bench import layers as inspect
from compress_core.bench.workbench import Compressed, Workbench
from compress_core.engine import recover
from compress_core.engine.recover.bn import dense_statistics

from . import catalogue

log = logging.getLogger("prunescope.app")
LATENCY_BUDGET_S = 0.2  # per measured structure; latency is reused between recipes of equal structure
# Every result the dashboard shows is timed at batch 1 on the process's torch threads (``startup_threads``);
# ``evaluate``, ``peek`` and ``remember`` must agree on both, since the Workbench keys its cache by them:
# they all measure with ``settings(mode)``.
LATENCY_BATCH = 1
# Every position of Explore's sparsity slider (step 5 %): the background fill of the curve is
# also a prefetch, so once it is done every slider position of this method is instant.
CURVE_SPARSITIES = tuple(round(0.05 * i, 2) for i in range(20))


@st.cache_resource(max_entries=1, show_spinner=False)
def startup_threads() -> int:
    """Set torch threads once per process (recorded with every latency)."""
    return configure_threads()


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def workbench(model_id: str) -> Workbench:
    """The zoo model, or an uploaded one (its id names the file's sha256)."""
    return catalogue.build_workbench(model_id)


@st.cache_resource(max_entries=1, show_spinner=False)
def _warm() -> set[tuple[str, str]]:
    """(model, eval mode) pairs whose dense predictions and facts this process has computed."""
    return set()


def is_warm(model_id: str, mode: str) -> bool:
    return (model_id, mode) in _warm()


def warm_up(model_id: str, mode: str) -> None:
    """Load the model and do the once-per-model work (test images, dense predictions, dense file, and
    with BatchNorm recovery the dense model's statistics on the calibration images) that the first slider
    move would otherwise pay for."""
    wb = workbench(model_id)
    wb.dense_predictions(wb.eval_data(mode))
    wb.dense_facts()
    if catalogue.prunable(model_id) and recover.default_level(wb.model) == "bn":
        dense_statistics(wb.model, wb.recovery_images())
    _warm().add((model_id, mode))


def settings(mode: str) -> MeasureSettings:
    """How the dashboard measures in ``mode``: batch ``LATENCY_BATCH``, ``LATENCY_BUDGET_S`` per structure."""
    return MeasureSettings(mode, LATENCY_BATCH, budget_s=LATENCY_BUDGET_S)


def peek(model_id: str, recipe: Recipe, mode: str) -> dict | None:
    """The result if it was computed already (by any session), else None. Never computes."""
    hit = workbench(model_id).peek(recipe, settings(mode))
    return None if hit is None else hit.to_dict()


def compressed(model_id: str, recipe: Recipe, progress: Progress | None = None) -> Compressed:
    """The compressed model (kept by the Workbench when it is expensive to rebuild)."""
    return workbench(model_id).compressed(recipe, progress=progress)


def result(model_id: str, recipe: Recipe, mode: str, progress: Progress | None = None, oneshot: bool = True) -> dict:
    """``Result.to_dict()`` for the recipe, computed once per (model, recipe, mode) per process. With
    ``oneshot=False`` a recipe with recovery comes back without its one-shot accuracy unless that is cached
    (``Workbench.evaluate``): Explore shows the recovered cards first and asks for it afterwards."""
    return workbench(model_id).evaluate(recipe, settings(mode), progress, oneshot=oneshot).to_dict()


def oneshot_missing(recipe: Recipe, res: dict) -> bool:
    """Whether ``res`` (of ``recipe``) still lacks the one-shot accuracy it will show beside the recovered one."""
    return recipe.recovery != "none" and res.get("accuracy_oneshot") is None


def remeasure(model_id: str, recipe: Recipe, mode: str, progress: Progress | None = None) -> dict:
    """Time the recipe against dense again; the Workbench and the results store (where the recipe has
    a row) keep the better-quality measurement. Returns the result now shown."""
    from compress_core.study.executors import stamped
    from compress_core.study.store import ResultStore

    res = workbench(model_id).remeasure(recipe, settings(mode), progress).to_dict()
    try:
        with ResultStore() as store:
            if store.has(model_id, recipe.to_json(), mode, LATENCY_BATCH):  # stamped: measured on this server
                res = store.put(model_id, recipe.to_json(), mode, LATENCY_BATCH, stamped(res, "inprocess"))
    except ValueError:  # an unreadable store: the re-measurement still shows on screen
        log.warning("results store not updated after re-measuring", exc_info=True)
    return res


def remember(model_id: str, mode: str, stored: dict) -> None:
    """Share a result measured elsewhere (a stored sweep row) with Explore, its curve and Compare."""
    try:
        workbench(model_id).remember(stored, settings(mode))
    except (KeyError, TypeError, ValueError):  # a row written by another version: measured again when asked
        log.warning("stored result of %s not reused", model_id, exc_info=True)


def curve_recipes(recipe: Recipe) -> list[Recipe]:
    """The accuracy-vs-sparsity grid for the recipe's method, bit-width and recovery (no fine-tuning);
    a point that compresses nothing is the dense recipe itself (nothing to recover)."""
    base = replace(recipe, finetune=None)
    points = [base.with_prune(sparsity=s) for s in CURVE_SPARSITIES]
    return [r if r.compressed else r.with_recovery("none") for r in points]


def recovery_levels(model_id: str) -> tuple[str, ...]:
    """The recovery levels this model can use (no ``bn`` without BatchNorm)."""
    return recover.usable_levels(workbench(model_id).model)


def default_recovery(model_id: str) -> str:
    """The strongest level that keeps a slider move interactive (``recover.default_level``)."""
    return recover.default_level(workbench(model_id).model)


def curve_frame(
    model_id: str, recipe: Recipe, mode: str, failed: frozenset[str] = frozenset()
) -> tuple[pd.DataFrame, list[Recipe]]:
    """Known points of the curve (including the current recipe) and the grid recipes still missing,
    nearest to the current sparsity first (the slider's next stops); recipes whose JSON is in
    ``failed`` raised before and are not retried. A point measured without its one-shot accuracy yet
    (a slider move shows the recovered numbers first) is drawn, and missing too, until the fill adds it."""
    rows, missing = [], []
    candidates = curve_recipes(recipe)
    if recipe.finetune is None and all(abs(recipe.prune.sparsity - r.prune.sparsity) > 1e-9 for r in candidates):
        candidates.append(recipe)
    for r in candidates:
        res = peek(model_id, r, mode)
        if (res is None or oneshot_missing(r, res)) and r.to_json() not in failed:
            missing.append(r)
        if res is not None:
            rows.append(
                {
                    "sparsity": r.prune.sparsity,
                    "accuracy": res["accuracy"],
                    "accuracy_ci_low": res["accuracy_ci_low"],
                    "accuracy_ci_high": res["accuracy_ci_high"],
                    # without recovery (the dense point, recovery "none") the one-shot number is the accuracy;
                    # not measured yet: a gap in the one-shot line, never the recovered number in its place
                    "accuracy_oneshot": _oneshot_of(r, res),
                }
            )
    columns = ["sparsity", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "accuracy_oneshot"]
    df = pd.DataFrame(rows, columns=columns)
    missing.sort(key=lambda r: abs(r.prune.sparsity - recipe.prune.sparsity))
    return df, missing


def _oneshot_of(recipe: Recipe, res: dict) -> float:
    if recipe.recovery == "none":
        return res["accuracy"]
    oneshot = res.get("accuracy_oneshot")
    return float("nan") if oneshot is None else oneshot


@st.cache_data(max_entries=64, show_spinner=False)
def layer_frame(model_id: str, recipe_json: str) -> pd.DataFrame:
    comp = compressed(model_id, Recipe.from_json(recipe_json))
    return inspect.layer_table(comp, dense=workbench(model_id).model)


@st.cache_data(max_entries=64, show_spinner=False)
def histogram_frame(model_id: str, recipe_json: str, layer: str | None) -> tuple[pd.DataFrame, dict[str, int]]:
    comp = compressed(model_id, Recipe.from_json(recipe_json))
    dense = workbench(model_id).model
    return inspect.weight_histogram(dense, comp, layer=layer), inspect.zero_counts(dense, comp, layer=layer)


@st.cache_data(max_entries=256, show_spinner=False)
def masked_size_bytes(model_id: str, recipe_json: str) -> int:
    return inspect.state_dict_size_bytes(compressed(model_id, Recipe.from_json(recipe_json)))


def _progress_in_place(label: str) -> tuple[Progress, Callable[[], object]]:
    """A progress bar created here (inside a cached function it replays as nothing: it is emptied)."""
    slot = st.empty()
    bar = slot.progress(0.0, text=label)

    def update(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"{label} — {message}")

    return update, slot.empty


@st.cache_data(max_entries=16, show_spinner=False)
def sensitivity_frame(
    model_id: str,
    analysis: str,
    prune_kind: str,
    sparsities: tuple[float, ...],
    bits: tuple[int, ...],
    criterion: str,
    mode: str,
    recovery: str = "none",
) -> pd.DataFrame:
    """Per-layer sensitivity (``analysis`` = "sparsity" or "bits"; the pruning analysis after ``recovery``),
    with a progress bar while it runs."""
    from compress_core.study import sensitivity

    update, done = _progress_in_place("Measuring each layer")
    wb = workbench(model_id)
    if analysis == "sparsity":
        df = sensitivity.layer_sensitivity(
            wb,
            sparsities=sparsities,
            criterion=criterion,
            kind=prune_kind,
            mode=mode,
            progress=update,
            recovery=recovery,
        )
    else:
        df = sensitivity.bit_sensitivity(wb, bits=bits, mode=mode, progress=update)
    done()
    return df


@st.cache_data(max_entries=8, show_spinner="Writing the compressed artefact…")
def artifact_file(model_id: str, recipe_json: str) -> bytes:
    from compress_core.files.artifact import artifact_bytes

    arch = catalogue.artifact_id(model_id)
    if arch is None:
        raise ValueError(
            f"{model_id} matches no zoo architecture, so it has no .psz artefact format; export it as ONNX instead"
        )
    return artifact_bytes(compressed(model_id, Recipe.from_json(recipe_json)), arch)


def store_frame(model_id: str, mode: str, runtime: str = "torch") -> pd.DataFrame:
    """Stored sweep results of this model and eval mode (latency at batch 1) on ``runtime``, oldest first."""
    from compress_core.study.store import ResultStore

    with ResultStore() as store:
        df = store.frame(model_id)
    keep = (df["mode"] == mode) & (df["runtime"] == runtime) & (df["latency_batch"] == LATENCY_BATCH)
    return df[keep].reset_index(drop=True)


def run_sweep(
    model_id: str, recipes: list[Recipe], mode: str, on_result: Callable[[int, int, dict], None], runtime: str = "torch"
) -> pd.DataFrame:
    """Run and persist a sweep on the shared Workbench (on ``runtime``); eager rows also feed Explore's results."""
    from compress_core.study import sweep
    from compress_core.study.store import ResultStore

    with ResultStore() as store:

        def on_row(i: int, n: int, row: dict) -> None:
            stored = store.get(model_id, row["recipe_json"], mode, LATENCY_BATCH) if runtime == "torch" else None
            if stored is not None:
                remember(model_id, mode, stored)
            on_result(i, n, row)

        return sweep.run_sweep(
            model_id,
            recipes,
            mode=mode,
            latency_budget_s=LATENCY_BUDGET_S,
            on_result=on_row,
            store=store,
            workbench=workbench(model_id),
            runtime=runtime,
        )


def remember_stored(model_id: str, recipe_json: str, mode: str) -> None:
    """Load one stored sweep result into the Workbench's cache, so opening it in Explore is instant."""
    from compress_core.study.store import ResultStore

    with ResultStore() as store:
        stored = store.get(model_id, recipe_json, mode, LATENCY_BATCH)
    if stored is not None:
        remember(model_id, mode, stored)
