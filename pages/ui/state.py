"""Every session-state key, initialised in one place, and the URL <-> recipe round trip.

The current recipe lives in ``st.session_state[RECIPE]`` as canonical JSON and is mirrored in
the URL (``?model=…&eval=…&recipe=<json>``), so a shared link restores the exact view. The URL is
read once, when a session starts; bad input there becomes a warning and the defaults, never a
traceback. Explore's widgets have their own keys (``W_*``); ``load_into_widgets`` writes a
recipe into them, so other pages (Sweep, Sensitivity) can hand a recipe to Explore.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import streamlit as st

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.records import EVAL_MODES
from compress_core.models import DEFAULT_MODEL, REGISTRY

# -- app-wide keys -------------------------------------------------------------------------------
MODEL = "model_id"  # sidebar selectbox: the model every page works on
EVAL = "eval_mode"  # sidebar radio: "quick" (1,000 images) or "full" (the test set)
RECIPE = "recipe_json"  # the current recipe, canonical JSON (also in the URL)
PINS = "pins"  # up to MAX_PINS dicts {model, recipe, label} for Compare
NOTICES = "notices"  # one-shot warnings for the next render (e.g. a bad link)
FULL_RUNS = "full_runs"  # counts full script runs; fragments compare it to tell timer runs apart
CURVE_SEEN = "curve_seen_full_run"  # the full run the accuracy-curve fragment last rendered in
CURVE_FAILED = "curve_failed"  # curve points that raised (skipped, so the background fill ends)
STARTED = "session_started"
HANDOFF = "handoff_model"  # the model a recipe handed to Explore belongs to (open_in_explore -> apply_handoff)
ROUTED = "routed"  # set by app.py right before it runs a page; each page consumes it (see routes.py)

# -- Explore widgets -----------------------------------------------------------------------------
W_KIND = "w_kind"
W_CRITERION = "w_criterion"
W_SCOPE = "w_scope"
W_SPARSITY = "w_sparsity_pct"  # integer percent, 0..95
W_BITS = "w_bits"
W_INT8 = "w_int8"
W_SCHEME = "w_scheme"
W_GRANULARITY = "w_granularity"
W_INT8_MODE = "w_int8_mode"
W_RESIDUAL = "w_residual"  # structured pruning also prunes residual streams (PruneSpec.residual)
W_ROUND_TO = "w_round_to"  # structured: kept channels rounded to a multiple (PruneSpec.round_to; 0 = off)
W_RUNTIME = "w_runtime"  # the deployment runtime latency is shown on ("auto" = the fastest measured here)
RUNTIME_CHOICE = "runtime_choice"  # W_RUNTIME's value, kept while another page is shown
W_RECOVERY = "w_recovery"  # post-training recovery level (Recipe.recovery); its default depends on the model
W_HIST_LAYER = "w_hist_layer"
W_FT_EPOCHS = "w_ft_epochs"
W_FT_SAMPLES = "w_ft_samples"
W_FT_DISTILL = "w_ft_distill"
B_PIN = "b_pin"  # buttons with keys, so tests and people can find them
B_RECOVER = "b_recover"
B_CLEAR_RATIOS = "b_clear_ratios"
B_CLEAR_FINETUNE = "b_clear_finetune"
B_UNPIN = "b_unpin_{}"  # one per pin, formatted with its index
B_CLEAR_PINS = "b_clear_pins"
B_REMEASURE = "b_remeasure"  # time the current recipe against dense again (noisy latency)
B_RESET_DENSE = "b_reset_dense"
B_REPORT = "b_report_{}"  # the HTML report's download button, formatted with the page
B_SWEEP_REMEASURE = "b_sweep_remeasure"
B_STAIRCASE = "b_staircase"
B_ACROSS = "b_across_runtimes"
STAIRCASE = "staircase"  # {"key": (model, recipe, runtime), "df": the measured staircase}
ACROSS = "across_runtimes"  # {"key": (model, recipe, mode), "df": the recipe on every runtime}
EXPLORE_WIDGETS = (
    W_KIND,
    W_CRITERION,
    W_SCOPE,
    W_SPARSITY,
    W_BITS,
    W_INT8,
    W_SCHEME,
    W_GRANULARITY,
    W_INT8_MODE,
    W_RESIDUAL,
    W_ROUND_TO,
    W_RECOVERY,
)

# -- other pages' widgets and results ------------------------------------------------------------
SENS_KIND = "sens_kind"  # "sparsity" or "bits"
SENS_PRUNE_KIND = "sens_prune_kind"
SENS_SPARSITIES = "sens_sparsities"
SENS_BITS = "sens_bits"
SENS_CRITERION = "sens_criterion"
SENS_MAX_DROP = "sens_max_drop_pct"
SENS_RECOVERY = "sens_recovery"  # recovery applied after pruning each layer (pruning analysis)
SENS_PARAMS = "sens_params"  # the parameters of the last analysis the user ran (dict)
SWEEP_KINDS = "sweep_kinds"
SWEEP_SPARSITIES = "sweep_sparsities"
SWEEP_BITS = "sweep_bits"
SWEEP_CRITERION = "sweep_criterion"
SWEEP_SCOPE = "sweep_scope"
SWEEP_INT8 = "sweep_int8"
SWEEP_RECOVERY = "sweep_recovery"  # post-training recovery of every compressed point
SWEEP_RUNTIME = "sweep_runtime"  # the runtime a sweep measures on, and whose stored rows the page shows
SWEEP_RAY = "sweep_ray"  # "Run on Ray" (offered when PRUNESCOPE_RAY_ADDRESS is set)
SWEEP_PICK = "sweep_pick"
SWEEP_GRID = "sweep_grid"  # the last grid run here: {"where": (model, mode, runtime), "recipes": [recipe JSON]}
SWEEP_PICK_FROM_CHART = "sweep_pick_from_chart"  # the last chart click applied to the picker
SWEEP_CHART_SIZE = "sweep_chart_size"
SWEEP_CHART_LATENCY = "sweep_chart_latency"
W_EXPORT_RUNTIME = "w_export_runtime"  # Export: the runtime whose deployable file to build
EXPORT_DEPLOY = "export_deploy"  # {"key": (model, recipe, runtime), "files": {name: bytes} or a refusal}
B_DEPLOY_DOWNLOAD = "b_deploy_download"
EXPORT_ONNX = "export_onnx"  # {"key": (model, recipe_json, dynamic batch), "bytes": ..., "error": ...}
EXPORT_ONNX_INT8 = "export_onnx_int8"  # {"key": (model, recipe_json), "files": {name: bytes} or the refusal}
W_ONNX_BATCH = "w_onnx_batch"  # Export: the ONNX file's batch dimension (dynamic or 1)

# -- sidebar upload box (pages/ui/upload_box.py) ----------------------------------------------------
UPLOAD_FILE = "upload_file"  # st.file_uploader
UPLOAD_ARCH = "upload_arch"  # "auto-detect" or a zoo id
UPLOAD_DATASET = "upload_dataset"  # asked only for graphs that match no zoo architecture
UPLOAD_ERROR = "upload_error"  # the last refusal's message, shown until the next change
UPLOADED_IDS = "uploaded_ids"  # upload model ids registered by this session (the picker lists them)

MAX_PINS = 4
SPARSITY_MAX_PCT = 95
DEFAULT_RECIPE = Recipe(prune=PruneSpec(kind="unstructured"))


def init(known: Callable[[str], bool]) -> None:
    """Run at the top of every full script run: count the run, and set up a new session from the URL.

    ``known(model_id)`` says whether a model id in a link can be shown (a zoo model, or an upload this
    process still holds: ``catalogue.known``)."""
    ss = st.session_state
    ss[FULL_RUNS] = ss.get(FULL_RUNS, 0) + 1
    if ss.get(STARTED):
        return
    ss[STARTED] = True
    ss[NOTICES] = []
    ss[PINS] = []
    ss[EXPORT_ONNX] = None
    ss[EXPORT_ONNX_INT8] = None
    ss[EXPORT_DEPLOY] = None
    ss[SENS_PARAMS] = None
    ss[CURVE_FAILED] = set()
    params = st.query_params
    model = params.get("model", DEFAULT_MODEL)
    if not known(model):
        notice(
            f"The link names an unknown model {model!r}; showing {DEFAULT_MODEL} instead. "
            f"Models: {', '.join(REGISTRY)}."
        )
        model = DEFAULT_MODEL
    mode = params.get("eval", "quick")
    if mode not in EVAL_MODES:
        notice(f"The link asks for evaluation {mode!r}; use 'quick' or 'full'. Showing quick.")
        mode = "quick"
    ss[MODEL], ss[EVAL] = model, mode
    ss[UPLOADED_IDS] = [] if model in REGISTRY else [model]  # a shared link to an upload lists it
    recipe = DEFAULT_RECIPE
    if "recipe" in params:
        try:
            recipe = Recipe.from_json(params["recipe"])
        except Exception as exc:
            notice(
                f"The recipe in this link could not be read ({exc}). Showing the default recipe instead; "
                "copy a fresh link from the address bar once the page shows what you want."
            )
    ss[RECIPE] = recipe.to_json()
    load_into_widgets(recipe)


def notice(text: str) -> None:
    st.session_state.setdefault(NOTICES, []).append(text)


def pop_notices() -> list[str]:
    out = list(st.session_state.get(NOTICES, []))
    st.session_state[NOTICES] = []
    return out


def model_id() -> str:
    return st.session_state[MODEL]


def eval_mode() -> str:
    return st.session_state[EVAL]


def current_recipe() -> Recipe:
    return Recipe.from_json(st.session_state[RECIPE])


def set_recipe(recipe: Recipe) -> None:
    st.session_state[RECIPE] = recipe.to_json()
    sync_url()


def sync_url() -> None:
    """Mirror model, eval mode and recipe into the URL (only what changed, to keep reruns quiet)."""
    want = {"model": model_id(), "eval": eval_mode(), "recipe": st.session_state[RECIPE]}
    for key, value in want.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value


def load_into_widgets(recipe: Recipe) -> None:
    """Write ``recipe`` into Explore's widget keys. Call before those widgets render in this run
    (from another page, a callback, or at session start)."""
    ss = st.session_state
    p, q = recipe.prune, recipe.quant
    ss[W_KIND] = p.kind if p.kind != "none" else "unstructured"
    ss[W_CRITERION], ss[W_SCOPE] = p.criterion, p.scope
    ss[W_SPARSITY] = round(p.sparsity * 100) if p.kind != "none" else 0
    ss[W_SPARSITY] = min(ss[W_SPARSITY], SPARSITY_MAX_PCT)
    ss[W_BITS], ss[W_INT8] = q.bits, q.int8
    ss[W_SCHEME], ss[W_GRANULARITY], ss[W_INT8_MODE] = q.scheme, q.granularity, q.int8_mode
    ss[W_RESIDUAL] = p.residual
    ss[W_ROUND_TO] = p.round_to
    if recipe.compressed:
        ss[W_RECOVERY] = recipe.recovery
    else:  # a dense recipe has nothing to recover: the control shows the model's default (ensure_widgets)
        ss.pop(W_RECOVERY, None)


def open_in_explore(recipe: Recipe, model: str | None = None) -> None:
    """Make ``recipe`` current and load it into Explore's widgets (call from a non-Explore page).

    ``model`` is the model the recipe was made for (per-layer ratios name its layers): it travels with the
    recipe, so the next run shows that model, sidebar included (``apply_handoff``), whatever the picker's
    widget state went through on the way (``st.switch_page`` clears the URL and can reset the picker)."""
    load_into_widgets(recipe)
    if model is not None:
        st.session_state[HANDOFF] = model
    set_recipe(recipe)


def explore_link() -> dict[str, str]:
    """The query parameters of the current view, for ``st.switch_page(..., query_params=...)``."""
    return {"model": model_id(), "eval": eval_mode(), "recipe": st.session_state[RECIPE]}


def apply_handoff() -> None:
    """app.py, before the sidebar renders: a model handed over with a recipe becomes the picker's value."""
    model = st.session_state.pop(HANDOFF, None)
    if model is not None:
        st.session_state[MODEL] = model


def ensure_widgets(recovery_levels: tuple[str, ...], default_recovery: str) -> None:
    """Give Explore's widgets their values from the current recipe if Streamlit dropped them
    (it forgets widget state while another page is shown). The recovery control gets the model's
    default when it has no value or one this model cannot use (``bn`` after a switch to a LeNet)."""
    ss = st.session_state
    if any(k not in ss for k in EXPLORE_WIDGETS if k != W_RECOVERY):
        load_into_widgets(current_recipe())
    if ss.get(W_RECOVERY) not in recovery_levels:
        ss[W_RECOVERY] = default_recovery


def recipe_from_widgets(base: Recipe) -> Recipe:
    """The recipe Explore's widgets describe. Per-layer ratios, skip list and seed come from ``base``;
    its fine-tuning is kept only while pruning and quantization are unchanged."""
    ss = st.session_state
    bits = int(ss[W_BITS])
    prune = replace(
        base.prune,
        kind=ss[W_KIND],
        criterion=ss[W_CRITERION],
        scope=ss[W_SCOPE],
        sparsity=int(ss[W_SPARSITY]) / 100,
        residual=bool(ss[W_RESIDUAL]),
        round_to=int(ss[W_ROUND_TO]) if ss[W_KIND] == "structured" else 0,
    )
    quant = QuantSpec(
        bits=bits,
        scheme=ss[W_SCHEME],
        granularity=ss[W_GRANULARITY],
        int8=bool(ss[W_INT8]) and bits == 8,
        int8_mode=ss[W_INT8_MODE],
        # per-layer bits (from Budget) stay: the bit-width slider sets the other layers' bits
        layer_bits=() if bool(ss[W_INT8]) and bits == 8 else base.quant.layer_bits,
    )
    out = Recipe(prune=prune, quant=quant)
    # Recovery applies to compressed recipes only, so the dense recipe keeps one JSON (cache, URL, store).
    out = out.with_recovery(ss.get(W_RECOVERY, "none")) if out.compressed else out
    changed = (prune, quant, out.recovery) != (base.prune, base.quant, base.recovery)
    return out if changed else replace(out, finetune=base.finetune)


def clear_layer_ratios() -> None:
    """Callback: drop per-layer ratios (e.g. from Sensitivity) and return to the default skip list."""
    r = current_recipe()
    set_recipe(replace(r, prune=replace(r.prune, layer_sparsity=(), skip=PruneSpec().skip), finetune=None))


def on_kind_change() -> None:
    """Callback: switching to structured pruning picks the structured defaults (per-layer scope,
    inner channels only; ``vocab.STRUCTURED_DEFAULTS_WHY`` says why, with the numbers)."""
    ss = st.session_state
    if ss.get(W_KIND) == "structured":
        ss[W_SCOPE], ss[W_RESIDUAL] = "layer", False


def reset_recipe() -> None:
    """Callback: back to the default recipe, widgets included."""
    load_into_widgets(DEFAULT_RECIPE)
    set_recipe(DEFAULT_RECIPE)


def clear_finetune() -> None:
    set_recipe(replace(current_recipe(), finetune=None))


def on_model_change() -> None:
    """Callback: layer names differ between models, so per-layer ratios go; results stay cached."""
    clear_layer_ratios()
    st.session_state[EXPORT_ONNX] = None
    st.session_state[EXPORT_ONNX_INT8] = None


def pins() -> list[dict]:
    return list(st.session_state.get(PINS, []))


def pin(model: str, recipe: Recipe) -> str:
    """Pin a recipe for Compare; returns a message for the user."""
    entry = {"model": model, "recipe": recipe.to_json(), "label": recipe_text(recipe)}
    current = pins()
    if entry in current:
        return f"Already pinned: {entry['label']}."
    if len(current) >= MAX_PINS:
        return f"You can pin up to {MAX_PINS} recipes; unpin one on the Compare page first."
    st.session_state[PINS] = [*current, entry]
    return f"Pinned {entry['label']} ({len(current) + 1} of {MAX_PINS})."


def unpin(index: int) -> None:
    current = pins()
    if 0 <= index < len(current):
        current.pop(index)
    st.session_state[PINS] = current


def clear_pins() -> None:
    st.session_state[PINS] = []


def recipe_text(recipe: Recipe) -> str:
    """``Recipe.label()``, except that per-layer ratios (from Sensitivity) say so instead of showing the
    slider's sparsity, which they override."""
    p = recipe.prune
    if not p.layer_sparsity or p.kind == "none":
        return recipe.label()
    ratios = [s for _, s in p.layer_sparsity]
    inner = " inner" if p.kind == "structured" and not p.residual else ""
    span = f"{min(ratios):.0%}" if min(ratios) == max(ratios) else f"{min(ratios):.0%}–{max(ratios):.0%}"
    prune = f"{p.kind}{inner} {p.criterion} per-layer ratios ({len(ratios)} layers, {span})"
    rest = replace(recipe, prune=PruneSpec()).label()
    return prune if rest == "dense fp32" else f"{prune} + {rest}"


def pretty_json(recipe: Recipe) -> str:
    return json.dumps(recipe.to_dict(), indent=2, sort_keys=True)
