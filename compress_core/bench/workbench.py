"""Recipe in, Result out: the orchestrator at the top of the core.

``Workbench`` holds one loaded model with its caches (dense predictions, importance orderings,
latencies per structure, results and expensive compressed models per recipe), runs a Recipe's
stages (``stages.apply_recipe``) on a deep copy and turns it into a ``Result`` of measured values.
It is thread-safe: the dashboard shares one Workbench per model between sessions, and its result
cache (with the non-computing ``peek``) is the only one the dashboard reads.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time

import torch
from torch import nn

from compress_core.base import timing
from compress_core.base.lru import LRU
from compress_core.base.recipe import PruneSpec, Recipe
from compress_core.base.records import (
    NO_CALIBRATION,
    SIZE_ARTIFACT,
    SIZE_ESTIMATE,
    Calibration,
    Compressed,
    Progress,
    Result,
    span,
)
from compress_core.base.settings import MeasureSettings, checked
from compress_core.bench.latency import PairedLatency, Timed
from compress_core.bench.parts import accuracies, eval_notes, expensive, fields_of, forgets_on, predict_probs
from compress_core.data import sets as data_mod
from compress_core.engine import measure
from compress_core.engine.prune import criteria
from compress_core.engine.prune.layers import prunable_layers
from compress_core.engine.recover import BN_SAMPLES, CALIBRATION_BATCH
from compress_core.engine.stages import apply_recipe, finish_stages, prune_stage
from compress_core.files.artifact import artifact_bytes
from compress_core.models import REGISTRY, ModelSpec, get_spec
from compress_core.models import load as load_model


class Workbench:
    """One loaded model and everything cached about it. Never mutates the loaded model."""

    def __init__(
        self,
        model_id: str,
        model: nn.Module | None = None,
        spec: ModelSpec | None = None,
        calib_samples: int = 256,
        max_results: int = 512,
        eval_override: data_mod.TensorSet | None = None,
        artifact_id: str | None = None,
    ) -> None:
        self.spec = spec or get_spec(model_id)
        # Evaluate on these images instead of the spec's dataset, in every mode (e.g. the user's image folder:
        # imagefolder.load_image_folder). It also serves as calibration data: there is no separate train split.
        self.eval_override = eval_override
        self.artifact_id = artifact_id or model_id  # zoo architecture the artefact file names (uploads: their arch)
        self.model_id = model_id
        self.model = (model if model is not None else load_model(model_id)).eval()
        self.calib_samples = calib_samples
        self._lock = threading.RLock()
        self._dense_preds: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # eval set -> (top-1, softmax)
        self._scores: dict[tuple, tuple[list[torch.Tensor], torch.Tensor | None]] = {}
        self.latency = PairedLatency(self.model, tuple(self.spec.input_shape), self._lock)
        self._results: LRU[Result] = LRU(max_results)
        self._tuned: LRU[Compressed] = LRU(4)  # pruned + fine-tuned, before quantization
        self._kept: LRU[Compressed] = LRU(12)  # expensive compressed models (int8, structured, fine-tuned)
        self._recent: LRU[Compressed] = LRU(2)  # the last cheap ones: the per-layer views reuse them
        self._dense: dict[str, int] = {}

    # -- data ---------------------------------------------------------------------------------
    def eval_data(self, mode: str = "quick") -> data_mod.TensorSet:
        if self.eval_override is not None:
            return self.eval_override
        return data_mod.eval_set(self.spec.dataset, mode)

    def calib(self) -> list[torch.Tensor]:
        if self.eval_override is not None:
            x = self.eval_override.x[: self.calib_samples]
            return [x[i : i + 64] for i in range(0, len(x), 64)]
        return data_mod.calibration_batches(self.spec.dataset, self.calib_samples)

    def labelled(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self.eval_override is not None:  # unlabelled images: none, so "taylor" says it needs data
            s = self.eval_override
            if not getattr(s, "labelled", True):
                return []
            n = min(len(s), self.calib_samples)
            return [(s.x[i : min(i + 64, n)], s.y[i : min(i + 64, n)]) for i in range(0, n, 64)]
        return data_mod.labelled_batches(self.spec.dataset, self.calib_samples)

    def calibration(self, recovery: bool = False) -> Calibration:
        """The calibration bundle every stage gets: training images, with labels where there are some, and
        (``recovery``) the larger sample post-training recovery uses (``recover.BN_SAMPLES`` images)."""
        return Calibration(self.calib(), self.labelled(), self.recovery_images() if recovery else [])

    def recovery_images(self) -> list[torch.Tensor]:
        if self.eval_override is not None:  # the user's own images are all there is
            return self.calib()
        return data_mod.calibration_batches(self.spec.dataset, BN_SAMPLES, CALIBRATION_BATCH)

    def dense_predictions(self, data: data_mod.TensorSet) -> torch.Tensor:
        return self.dense_outputs(data)[0]

    def dense_outputs(self, data: data_mod.TensorSet) -> tuple[torch.Tensor, torch.Tensor]:
        """The dense model's top-1 and softmax probabilities (float32, N x C) on ``data``, cached per eval set."""
        with self._lock:
            if data.name not in self._dense_preds:
                self._dense_preds[data.name] = predict_probs(self.model, "fp32", data)
            return self._dense_preds[data.name]

    def dense_facts(self) -> dict[str, int]:
        with self._lock:
            if not self._dense:
                # "artifact_bytes": the dense model in the same file format as every Result's size_bytes
                # (Workbench.size_of itself, not an override that measures one given file).
                self._dense = {
                    "params": measure.count_params(self.model)[0],
                    "macs": measure.count_macs(self.model, self.spec.input_shape),
                    "size_bytes": len(measure.state_dict_bytes(self.model)),
                    "artifact_bytes": Workbench.size_of(self, self.compress(Recipe()))[0],
                }
            return self._dense

    # -- scores: one sort per (criterion, skip, seed), reused for every sparsity ------------
    def _score_cache(self, layers, p: PruneSpec):
        key = (p.criterion, p.skip, p.seed if p.criterion == "random" else 0)
        with self._lock:
            if key not in self._scores:
                base_layers = dict(prunable_layers(self.model, p.skip))
                scoring_model = copy.deepcopy(self.model)  # taylor needs grads: never on the shared model
                modules = dict(scoring_model.named_modules())
                score_layers_ = [(n, modules[n]) for n in base_layers]
                calib = self.calibration() if criteria.needs_data(p.criterion) else NO_CALIBRATION
                scores = criteria.weight_scores(p.criterion, scoring_model, score_layers_, calib, p.seed)
                order = torch.argsort(torch.cat([s.flatten() for s in scores]), stable=True)
                self._scores[key] = (scores, order)
            return self._scores[key]

    # -- the main entry point -----------------------------------------------------------------
    def compress(self, recipe: Recipe, progress: Progress | None = None) -> Compressed:
        needs_data = (
            (recipe.prune.active and (criteria.needs_data(recipe.prune.criterion) or recipe.prune.kind == "structured"))
            or recipe.quant.int8
            or recipe.finetune is not None
            or recipe.recovery != "none"
        )
        calib = self.calibration(recovery=recipe.recovery != "none") if needs_data else NO_CALIBRATION
        if recipe.finetune is None:
            return apply_recipe(
                self.model, recipe, self.spec, calib, scores=self._score_cache, teacher=self.model, progress=progress
            )
        # Fine-tuning takes seconds to minutes: keep the tuned float model, so that another bit-width
        # (or int8) on top of the same pruning + fine-tuning only re-quantizes.
        key = (recipe.prune, recipe.finetune, recipe.recovery)
        tuned = self._tuned.get(key)
        if tuned is None:
            tuned = prune_stage(self.model, recipe, self.spec, calib, self._score_cache, self.model, progress)
            self._tuned.put(key, tuned)
        elif progress is not None:
            progress(1.0, "reused the fine-tuned model of an identical pruning + fine-tuning recipe")
        float_model = copy.deepcopy(tuned.float_model)
        out = Compressed(
            model=float_model,
            float_model=float_model,
            recipe=recipe,
            masks=dict(tuned.masks),
            simulated=list(tuned.simulated),
            structure=tuned.structure,
            history=list(tuned.history),
            recovery=tuned.recovery,
        )
        finish_stages(out, self.spec, calib, self.model, progress=progress)
        return out

    def evaluate(
        self,
        recipe: Recipe,
        settings: MeasureSettings | None = None,
        progress: Progress | None = None,
        *,
        compressed: Compressed | None = None,
        oneshot: bool = True,
    ) -> Result:
        """Measure ``recipe`` on eager PyTorch with ``settings`` (cached by ``settings.key(recipe)``). ``progress``
        hears every stage, including one report per evaluation batch (``measure.EVAL_BATCH`` images), per BatchNorm
        re-estimation batch and per timing round: a caller may raise from it to abandon the measurement (the
        dashboard does, to yield to the user's next move). Other runtimes: ``deploy.RuntimeBench``.
        With post-training recovery, ``accuracy_oneshot`` is the accuracy of the same recipe without it (its own
        cached evaluation, ``with_oneshot``); ``oneshot=False`` leaves it None unless that is known already, so
        that a caller can show the recovered numbers first and ask for the one-shot one afterwards."""
        s = checked(settings, "evaluate").resolved()
        key = s.key(recipe)
        if compressed is None and (hit := self._results.get(key)) is not None:
            return self.with_oneshot(recipe, hit, s.mode, oneshot, progress, key)
        own, rest = self._oneshot_share(recipe, s.mode, oneshot, progress)
        result = self._measure(recipe, s, compressed, own)
        if compressed is None:
            self._results.put(key, result)
        return self.with_oneshot(recipe, result, s.mode, oneshot, rest, key if compressed is None else None)

    def _measure(
        self, recipe: Recipe, s: MeasureSettings, compressed: Compressed | None, own: Progress | None
    ) -> Result:
        """One fresh eager measurement of ``recipe`` (not cached here), timing each stage into ``seconds``."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        cut = 0.6 if recipe.finetune else (0.4 if recipe.recovery != "none" else 0.1)
        comp = compressed or self.compressed(recipe, progress=span(own, 0.0, cut))
        timings["compress_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        data = self.eval_data(s.mode)
        ref, ref_probs = self.dense_outputs(data)  # first: an abandoned evaluation still leaves it cached
        preds, probs = predict_probs(comp.model, comp.kernels, data, span(own, cut, 0.9, "evaluating: "))
        acc, dense_acc = accuracies(preds, ref, data)
        lost = forgets_on(data, ref, ref_probs, preds, probs)
        timings["eval_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        total, nonzero = measure.count_params(comp.float_model)
        macs = measure.count_macs(comp.float_model, self.spec.input_shape)
        dense = self.dense_facts()
        size_bytes, size_method = self.size_of(comp)
        timings["size_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        lat = self._latency_fields(comp, s, span(own, 0.9, 1.0, "timing: "))
        if s.latency:
            timings["latency_s"] = time.perf_counter() - t0

        return Result(
            model=self.model_id,
            recipe=recipe.to_dict(),
            recipe_label=recipe.label(),
            eval_set=data.name,
            eval_samples=len(data),
            accuracy=acc.accuracy,
            accuracy_ci_low=acc.ci_low,
            accuracy_ci_high=acc.ci_high,
            agreement=acc.agreement,
            dense_accuracy=dense_acc.accuracy,
            params_total=total,
            params_nonzero=nonzero,
            dense_params=dense["params"],
            macs=macs,
            dense_macs=dense["macs"],
            dense_size_bytes=dense["size_bytes"],
            size_bytes=size_bytes,
            size_method=size_method,
            compression_ratio=dense["size_bytes"] / size_bytes,
            latency_batch=s.batch,
            latency_threads=_threads(s),
            simulated=[*comp.simulated, *eval_notes(data, s.mode, self.eval_override is not None)],
            seconds=timings,
            dense_artifact_bytes=dense["artifact_bytes"],
            **lat,
            recovery_s=comp.recovery["seconds"] if comp.recovery and recipe.recovery != "none" else None,
            forgets=lost,
        )

    def _oneshot_share(
        self, recipe: Recipe, mode: str, oneshot: bool, progress: Progress | None
    ) -> tuple[Progress | None, Progress | None]:
        """The progress spans of the measurement itself and of the one-shot evaluation it will run (if any)."""
        plain = recipe.with_recovery("none")
        if not (oneshot and recipe.recovery != "none") or self.peek(plain, _plain(mode)) is not None:
            return progress, progress
        return span(progress, 0.0, 0.75), span(progress, 0.75, 1.0, "one-shot (without recovery): ")

    def with_oneshot(
        self,
        recipe: Recipe,
        res: Result,
        mode: str = "quick",
        compute: bool = True,
        progress: Progress | None = None,
        key: tuple | None = None,
    ) -> Result:
        """``res`` (of ``recipe``) with ``accuracy_oneshot``: the accuracy of the same recipe without recovery,
        which is that recipe's own evaluation in this mode (cached; measured now if ``compute``). ``res``
        unchanged when the recipe has no recovery or the number is not known; else it replaces ``key``'s entry."""
        if recipe.recovery == "none" or res.accuracy_oneshot is not None:
            return res
        plain = recipe.with_recovery("none")
        hit = self.peek(plain, _plain(mode))
        if hit is None and compute:
            hit = self.evaluate(plain, _plain(mode), progress)
        if hit is None:
            return res
        res = dataclasses.replace(res, accuracy_oneshot=hit.accuracy)
        if key is not None:
            self._results.put(key, res)
        return res

    def _latency_fields(self, comp: Compressed, s: MeasureSettings, progress: Progress | None) -> dict:
        """The Result's latency fields: a paired measurement against the dense model, or all None."""
        if not s.latency:
            return {
                "latency_ms_p50": None,
                "latency_ms_iqr": None,
                "latency_kernels": comp.kernels,
                "dense_latency_ms_p50": None,
                "speedup": None,
            }
        pair, kernels = self.latency_of(comp.model, comp.kernels, s.batch, _threads(s), s.budget_s, progress)
        return fields_of(pair, kernels)

    def peek(self, recipe: Recipe, settings: MeasureSettings | None = None) -> Result | None:
        """The cached Result of ``evaluate`` with these settings (its one-shot accuracy where that is
        cached too), or None; never computes anything."""
        s = checked(settings, "peek")
        key = s.key(recipe)
        hit = self._results.get(key)
        return None if hit is None else self.with_oneshot(recipe, hit, s.mode, compute=False, key=key)

    def compressed(self, recipe: Recipe, progress: Progress | None = None) -> Compressed:
        """``compress(recipe)``, kept for the recipes that are expensive to rebuild (int8 conversion,
        structured pruning, fine-tuning; up to 12) and for the last two cheap ones, so that per-layer
        views and exports reuse the model the evaluation measured."""
        key = recipe.to_json()
        cache = self._kept if expensive(recipe) else self._recent
        comp = cache.get(key)
        if comp is None:
            comp = self.compress(recipe, progress=progress)
            cache.put(key, comp)
        return comp

    def remember(self, result: Result | dict, settings: MeasureSettings | None = None) -> None:
        """Put a Result measured elsewhere (a stored sweep row) into the cache ``peek`` and ``evaluate`` read.
        A row written before a field existed gets that field's default."""
        if isinstance(result, dict):
            result = Result.from_dict(result)
        self._results.put(checked(settings, "remember").key(Recipe.from_dict(result.recipe)), result)

    def remeasure(
        self,
        recipe: Recipe,
        settings: MeasureSettings | None = None,
        progress: Progress | None = None,
        *,
        previous: Result | dict | None = None,
    ) -> Result:
        """Time ``recipe`` against the dense model again and keep the better-quality measurement
        (``timing.better``: quiet beats noisy, then the smaller spread) for it and its structure.

        ``previous`` is the result to improve on (default: the cached one, else a fresh evaluation)."""
        s = checked(settings, "remeasure").replace(latency=True).resolved()  # it times: always
        if previous is not None:
            self.remember(previous, s)
        old = self.evaluate(recipe, s, progress)
        comp = self.compressed(recipe)
        with self._lock:
            pair, kernels = self.latency.time(comp.model, comp.kernels, s.batch, _threads(s), s.budget_s, progress)
            fresh = dataclasses.replace(old, **fields_of(pair, kernels))
            best = fresh if timing.better(fresh.to_dict(), old.to_dict()) else old
            if best is fresh:
                self.latency.keep(comp.model, comp.kernels, s.batch, _threads(s), (pair, kernels))
        self.remember(best, s)
        return best

    def size_of(self, comp: Compressed) -> tuple[int, str]:
        """Bytes of the real compressed artefact file; an estimate where no artefact format exists."""
        if self.artifact_id not in REGISTRY:  # an upload matched to no zoo architecture: no artefact format
            return measure.zlib_size(comp.model), SIZE_ESTIMATE
        return len(artifact_bytes(comp, self.artifact_id)), SIZE_ARTIFACT

    def latency_of(
        self, model: nn.Module, kernels: str, batch: int, threads: int, budget: float, progress: Progress | None = None
    ) -> Timed:
        """``model`` timed paired with the dense model, once per structure (``PairedLatency.of``)."""
        return self.latency.of(model, kernels, batch, threads, budget, progress)


def _plain(mode: str) -> MeasureSettings:
    """The settings of a recipe's one-shot evaluation: its mode, no latency."""
    return MeasureSettings(mode=mode, latency=False)


def _threads(s: MeasureSettings) -> int:
    return s.threads or torch.get_num_threads()
