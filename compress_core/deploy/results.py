"""A recipe's Result measured on a runtime, the dashboard's cached call, and the deployable files."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import torch

from compress_core.base.recipe import Recipe
from compress_core.base.records import Compressed, Progress, Result, check_eval_mode
from compress_core.bench.parts import fields_of
from compress_core.deploy.runtimes import RUNTIMES, Deployed, RuntimeUnsupported, get_runtime
from compress_core.deploy.sessions import (
    STATIC_EVAL_BATCH,
    Bench,
    latency_on,
    resolve_threads,
    session,
    state_of,
    vs_eager,
)
from compress_core.engine import measure


# -- results ----------------------------------------------------------------------------------------
def _accuracy(wb: Bench, dep: Deployed, mode: str, progress: Progress | None) -> measure.Accuracy:
    data = wb.eval_data(mode)
    ev = dep.reconfigure(batch=STATIC_EVAL_BATCH) if dep.static_batch and dep.batch < STATIC_EVAL_BATCH else None
    ev = ev or dep
    preds = []
    for lo in range(0, len(data.x), 1000):
        if progress is not None:
            progress(lo / max(len(data.x), 1), f"evaluating on {dep.runtime}: {lo:,} of {len(data.x):,} images")
        preds.append(ev.predict(data.x[lo : lo + 1000]).argmax(1))
    acc = measure.accuracy(torch.cat(preds), data.y, wb.dense_predictions(data))
    if not getattr(data, "labelled", True):
        nan = float("nan")
        acc = dataclasses.replace(acc, accuracy=nan, ci_low=nan, ci_high=nan)
    return acc


def evaluate_on(
    wb: Bench,
    recipe: Recipe,
    runtime: str,
    mode: str = "quick",
    batch: int = 1,
    threads: int | None = None,
    budget_s: float = 0.3,
    compressed: Compressed | None = None,
    measure_latency: bool = True,
    progress: Progress | None = None,
) -> Result:
    """``recipe`` measured on ``runtime`` as a ``Result`` (raises ``RuntimeUnsupported``, one line)."""
    check_eval_mode(mode)
    threads = resolve_threads(threads)
    get_runtime(runtime)  # an unknown key fails before any work
    if runtime == "torch":
        base = wb.evaluate(recipe, mode, batch, threads, budget_s, measure_latency, compressed, progress)
        dep = session(wb, recipe, "torch", batch, threads, compressed)
        return dataclasses.replace(
            base,
            runtime="torch",
            deploy_file_bytes=_file_bytes(dep),
            speedup_vs_eager=base.speedup,
            eager_latency_ms_p50=base.dense_latency_ms_p50,
        )
    comp = compressed or wb.compressed(recipe)
    base = wb.evaluate(recipe, mode, batch, threads, measure_latency=False, compressed=compressed)
    if progress is not None:
        progress(0.0, f"exporting to {runtime}")
    dep = session(wb, recipe, runtime, batch, threads, comp)
    t0 = time.perf_counter()
    acc = _accuracy(wb, dep, mode, progress)
    seconds = {
        **base.seconds,
        "eval_s": time.perf_counter() - t0,
        "deploy_s": state_of(wb).deploy_s.get((recipe.to_json(), runtime, batch), 0.0),
    }
    lat = _latency_fields(wb, recipe, dep, comp, runtime, budget_s, progress) if measure_latency else {}
    notes = [n for n in base.simulated if not n.endswith("latency is that of the fp32 kernels")]
    notes += [
        f"accuracy and latency measured on {runtime} ({dep.kernels}); speed-up against {runtime}'s own "
        "dense fp32 at the same batch and threads",
        *dep.notes,
    ]
    return dataclasses.replace(
        base,
        runtime=runtime,
        accuracy=acc.accuracy,
        accuracy_ci_low=acc.ci_low,
        accuracy_ci_high=acc.ci_high,
        agreement=acc.agreement,
        deploy_file_bytes=_file_bytes(dep),
        simulated=notes,
        seconds=seconds,
        **{"latency_kernels": dep.kernels, **lat},  # the runtime's kernels, timed or not
    )


def _latency_fields(
    wb: Bench, recipe: Recipe, dep: Deployed, comp: Compressed, runtime: str, budget_s: float, progress: Progress | None
) -> dict[str, Any]:
    """The Result's latency fields on the runtime: paired with its dense fp32, and scaled to eager PyTorch."""
    if progress is not None:
        progress(0.9, f"timing on {runtime}")
    pair = latency_on(wb, recipe, dep, comp, runtime, budget_s)
    factor, _, eager_ms = vs_eager(wb, runtime, dep.batch, dep.threads, budget_s)
    return {**fields_of(pair, dep.kernels), "speedup_vs_eager": pair.speedup * factor, "eager_latency_ms_p50": eager_ms}


def _file_bytes(dep: Deployed) -> int | None:
    try:
        return dep.file_bytes
    except ValueError:  # a deployment with no file format (RuntimeUnsupported is a ValueError)
        return None


def runtime_result(
    wb: Bench,
    recipe: Recipe,
    runtime: str = "torch",
    mode: str = "quick",
    batch: int = 1,
    threads: int | None = None,
    budget_s: float = 0.3,
    progress: Progress | None = None,
) -> dict:
    """``evaluate_on`` as ``Result.to_dict()`` plus ``error`` (None), cached per (recipe, runtime, mode,
    batch, threads); a runtime that cannot take the model gives ``{"runtime", "error"}`` instead."""
    key = (recipe.to_json(), runtime, mode, batch, resolve_threads(threads))
    st = state_of(wb)
    if (hit := st.results.get(key)) is not None:
        return hit
    reason = RUNTIMES[runtime].available() if runtime in RUNTIMES else None
    if reason is not None:
        return {"runtime": runtime, "error": f"{runtime} is not usable here: {reason}"}
    try:
        out = {
            **evaluate_on(wb, recipe, runtime, mode, batch, threads, budget_s, progress=progress).to_dict(),
            "error": None,
        }
    except RuntimeUnsupported as exc:
        out = {"runtime": runtime, "error": str(exc)}
    st.results.put(key, out)
    return out


def peek_runtime(
    wb: Bench, recipe: Recipe, runtime: str, mode: str = "quick", batch: int = 1, threads: int | None = None
) -> dict | None:
    """The cached ``runtime_result`` with these arguments, or None; never computes anything."""
    return state_of(wb).results.get((recipe.to_json(), runtime, mode, batch, resolve_threads(threads)))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def deploy_files(
    wb: Bench, recipe: Recipe, runtime: str, batch: int = 1, threads: int | None = None
) -> dict[str, bytes] | str:
    """The deployable file(s) of ``recipe`` on ``runtime``, by file name (ExecuTorch's ``.pte`` takes
    exactly ``batch`` samples); a str is the runtime's one-line reason it cannot take the model."""
    try:
        dep = session(wb, recipe, runtime, batch, threads)
        files = dep.files()
    except RuntimeUnsupported as exc:
        return str(exc)
    stem = f"{wb.model_id}-{_slug(recipe.label())}" + (f"-batch{batch}" if not RUNTIMES[runtime].dynamic_batch else "")
    return {stem + suffix: data for suffix, data in files.items()}


def save_deploy(
    wb: Bench,
    recipe: Recipe,
    runtime: str,
    path: str,
    batch: int = 1,
    threads: int | None = None,
    comp: Compressed | None = None,
) -> list[str]:
    """Write the deployable file(s) at ``path`` (its suffix replaced by the runtime's, e.g. ``.xml`` and
    ``.bin``); returns the paths written. Raises ``RuntimeUnsupported`` or ``ValueError`` (one line)."""
    dep = session(wb, recipe, runtime, batch, threads, comp)
    try:
        return [str(p) for p in dep.save(path)]
    except OSError as exc:
        raise ValueError(f"cannot write the deployable file at {path}: {exc.strerror or exc}") from None
