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
from collections.abc import Callable

import torch
from torch import nn

from . import data as data_mod
from . import measure
from .artifact import artifact_bytes
from .models import REGISTRY, ModelSpec, get_spec
from .lru import LRU
from .models import load as load_model
from .prune import criteria
from .prune.layers import prunable_layers
from .recipe import PruneSpec, Recipe
from .records import NO_CALIBRATION, SIZE_ARTIFACT, SIZE_ESTIMATE, Calibration, Compressed, Progress, Result
from .stages import apply_recipe, prune_stage, quantize_stage


def _structure_key(model: nn.Module, kernels: str) -> tuple:
    return (kernels, tuple((k, tuple(v.shape)) for k, v in model.state_dict().items() if hasattr(v, "shape")))


def expensive(recipe: Recipe) -> bool:
    """Recipes whose compressed model is worth keeping: int8 conversion, structured pruning, fine-tuning."""
    return recipe.quant.int8 or recipe.finetune is not None or (
        recipe.prune.active and recipe.prune.kind == "structured")


class Workbench:
    """One loaded model and everything cached about it. Never mutates the loaded model."""

    def __init__(self, model_id: str, model: nn.Module | None = None, spec: ModelSpec | None = None,
                 calib_samples: int = 256, max_results: int = 512,
                 eval_override: data_mod.TensorSet | None = None, artifact_id: str | None = None) -> None:
        self.spec = spec or get_spec(model_id)
        # Evaluate on these images instead of the spec's dataset, in every mode (e.g. the user's image folder:
        # imagefolder.load_image_folder). It also serves as calibration data: there is no separate train split.
        self.eval_override = eval_override
        self.artifact_id = artifact_id or model_id  # zoo architecture the artefact file names (uploads: their arch)
        self.model_id = model_id
        self.model = (model if model is not None else load_model(model_id)).eval()
        self.calib_samples = calib_samples
        self._lock = threading.RLock()
        self._dense_preds: dict[str, torch.Tensor] = {}
        self._scores: dict[tuple, tuple[list[torch.Tensor], torch.Tensor | None]] = {}
        self._latency: dict[tuple, tuple[measure.Latency, str]] = {}
        self._results: LRU[Result] = LRU(max_results)
        self._tuned: LRU[Compressed] = LRU(4)  # pruned + fine-tuned, before quantization
        self._kept: LRU[Compressed] = LRU(12)  # expensive compressed models (int8, structured, fine-tuned)
        self._dense: dict[str, int] = {}

    # -- data ---------------------------------------------------------------------------------
    def eval_data(self, mode: str = "quick") -> data_mod.TensorSet:
        if self.eval_override is not None:
            return self.eval_override
        return data_mod.eval_set(self.spec.dataset, mode)

    def calib(self) -> list[torch.Tensor]:
        if self.eval_override is not None:
            x = self.eval_override.x[: self.calib_samples]
            return [x[i:i + 64] for i in range(0, len(x), 64)]
        return data_mod.calibration_batches(self.spec.dataset, self.calib_samples)

    def labelled(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self.eval_override is not None:  # unlabelled images: none, so "taylor" says it needs data
            s = self.eval_override
            if not getattr(s, "labelled", True):
                return []
            n = min(len(s), self.calib_samples)
            return [(s.x[i:min(i + 64, n)], s.y[i:min(i + 64, n)]) for i in range(0, n, 64)]
        return data_mod.labelled_batches(self.spec.dataset, self.calib_samples)

    def calibration(self) -> Calibration:
        """The calibration bundle every stage gets: training images, with labels where there are some."""
        return Calibration(self.calib(), self.labelled())

    def dense_predictions(self, data: data_mod.TensorSet) -> torch.Tensor:
        with self._lock:
            if data.name not in self._dense_preds:
                self._dense_preds[data.name] = self.predict(self.model, "fp32", data)
            return self._dense_preds[data.name]

    def dense_facts(self) -> dict[str, int]:
        with self._lock:
            if not self._dense:
                self._dense = {
                    "params": measure.count_params(self.model)[0],
                    "macs": measure.count_macs(self.model, self.spec.input_shape),
                    "size_bytes": len(measure.state_dict_bytes(self.model)),
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
        needs_data = (recipe.prune.active and (criteria.needs_data(recipe.prune.criterion)
                                               or recipe.prune.kind == "structured")) \
            or recipe.quant.int8 or recipe.finetune is not None
        calib = self.calibration() if needs_data else NO_CALIBRATION
        if recipe.finetune is None:
            return apply_recipe(self.model, recipe, self.spec, calib, scores=self._score_cache, teacher=self.model,
                                progress=progress)
        # Fine-tuning takes seconds to minutes: keep the tuned float model, so that another bit-width
        # (or int8) on top of the same pruning + fine-tuning only re-quantizes.
        key = (recipe.prune, recipe.finetune)
        tuned = self._tuned.get(key)
        if tuned is None:
            tuned = prune_stage(self.model, recipe, self.spec, calib, self._score_cache, self.model, progress)
            self._tuned.put(key, tuned)
        elif progress is not None:
            progress(1.0, "reused the fine-tuned model of an identical pruning + fine-tuning recipe")
        float_model = copy.deepcopy(tuned.float_model)
        out = Compressed(model=float_model, float_model=float_model, recipe=recipe, masks=dict(tuned.masks),
                         simulated=list(tuned.simulated), structure=tuned.structure, history=list(tuned.history))
        quantize_stage(out, recipe.quant, calib, self.spec.input_shape)
        return out

    def evaluate(self, recipe: Recipe, mode: str = "quick", latency_batch: int = 1, threads: int | None = None,
                 latency_budget_s: float = 0.3, measure_latency: bool = True,
                 compressed: Compressed | None = None, progress: Progress | None = None) -> Result:
        threads = threads or torch.get_num_threads()
        key = (recipe.to_json(), mode, latency_batch, threads, measure_latency)
        if compressed is None and (hit := self._results.get(key)) is not None:
            return hit
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        comp = compressed or self.compressed(recipe, progress=progress)
        timings["compress_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        data = self.eval_data(mode)
        acc, dense_acc = self._accuracies(comp, data)
        timings["eval_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        total, nonzero = measure.count_params(comp.float_model)
        macs = measure.count_macs(comp.float_model, self.spec.input_shape)
        dense = self.dense_facts()
        size_bytes, size_method = self.size_of(comp)
        timings["size_s"] = time.perf_counter() - t0

        lat = dense_lat = None
        kernels = comp.kernels
        if measure_latency:
            t0 = time.perf_counter()
            lat, kernels = self.latency_of(comp.model, comp.kernels, latency_batch, threads, latency_budget_s)
            dense_lat, _ = self.latency_of(self.model, "fp32", latency_batch, threads, latency_budget_s)
            timings["latency_s"] = time.perf_counter() - t0

        simulated = [*comp.simulated, *self._eval_notes(data, mode)]
        result = Result(
            model=self.model_id, recipe=recipe.to_dict(), recipe_label=recipe.label(), eval_set=data.name,
            eval_samples=len(data), accuracy=acc.accuracy, accuracy_ci_low=acc.ci_low,
            accuracy_ci_high=acc.ci_high, agreement=acc.agreement, dense_accuracy=dense_acc.accuracy,
            params_total=total, params_nonzero=nonzero, dense_params=dense["params"], macs=macs,
            dense_macs=dense["macs"], dense_size_bytes=dense["size_bytes"], size_bytes=size_bytes,
            size_method=size_method, compression_ratio=dense["size_bytes"] / size_bytes,
            latency_ms_p50=lat.ms_p50 if lat else None, latency_ms_iqr=lat.ms_iqr if lat else None,
            latency_batch=latency_batch, latency_threads=threads, latency_kernels=kernels,
            dense_latency_ms_p50=dense_lat.ms_p50 if dense_lat else None,
            speedup=(dense_lat.ms_p50 / lat.ms_p50) if lat and dense_lat else None,
            simulated=simulated, seconds=timings)
        if compressed is None:
            self._results.put(key, result)
        return result

    def _accuracies(self, comp: Compressed, data: data_mod.TensorSet) -> tuple[measure.Accuracy, measure.Accuracy]:
        """(compressed, dense) accuracy on ``data``; NaN where the images are unlabelled (agreement only)."""
        ref = self.dense_predictions(data)
        acc = measure.accuracy(self.predict(comp.model, comp.kernels, data), data.y, ref)
        dense_acc = measure.accuracy(ref, data.y)
        if not getattr(data, "labelled", True):  # agreement with the dense model is all they can tell
            nan = float("nan")
            acc = dataclasses.replace(acc, accuracy=nan, ci_low=nan, ci_high=nan)
            dense_acc = dataclasses.replace(dense_acc, accuracy=nan)
        return acc, dense_acc

    def _eval_notes(self, data: data_mod.TensorSet, mode: str) -> list[str]:
        if self.eval_override is not None:
            notes = [f"evaluated on {len(data)} user images ({data.name}); calibration and importance data come "
                     "from the same images"]
            if not getattr(data, "labelled", True):
                notes.append("unlabelled images: accuracy is not measured (NaN); agreement is the fraction of "
                             "images whose top-1 class matches the dense model's")
            return notes
        return [f"accuracy on a stratified subset of {len(data)} test images (95 % CI shown)"] if mode == "quick" else []

    def peek(self, recipe: Recipe, mode: str = "quick", latency_batch: int = 1, threads: int | None = None,
             measure_latency: bool = True) -> Result | None:
        """The cached Result of ``evaluate`` with these arguments, or None; never computes anything."""
        key = (recipe.to_json(), mode, latency_batch, threads or torch.get_num_threads(), measure_latency)
        return self._results.get(key)

    def compressed(self, recipe: Recipe, progress: Progress | None = None) -> Compressed:
        """``compress(recipe)``, kept for the recipes that are expensive to rebuild (int8 conversion,
        structured pruning, fine-tuning) so that per-layer views and exports reuse the same model."""
        if not expensive(recipe):
            return self.compress(recipe, progress=progress)
        key = recipe.to_json()
        comp = self._kept.get(key)
        if comp is None:
            comp = self.compress(recipe, progress=progress)
            self._kept.put(key, comp)
        return comp

    def remember(self, result: Result | dict, mode: str = "quick", latency_batch: int = 1, threads: int | None = None,
                 measure_latency: bool = True) -> None:
        """Put a Result measured elsewhere (a stored sweep row) into the cache ``peek`` and ``evaluate`` read."""
        if isinstance(result, dict):
            result = Result(**{f.name: result[f.name] for f in dataclasses.fields(Result)})
        recipe = Recipe.from_dict(result.recipe)
        key = (recipe.to_json(), mode, latency_batch, threads or torch.get_num_threads(), measure_latency)
        self._results.put(key, result)

    def predict(self, model: nn.Module, kernels: str, data: data_mod.TensorSet) -> torch.Tensor:
        """Top-1 predictions; fp32 conv nets run on a channels_last copy (1.4x faster on ResNet-20 at
        batch 100 here, identical predictions), the given model itself is never converted."""
        if kernels == "fp32" and data.x.dim() == 4 and any(isinstance(m, nn.Conv2d) for m in model.modules()):
            fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
            return measure.predictions(fast, data, memory_format=torch.channels_last)
        return measure.predictions(model, data)

    def size_of(self, comp: Compressed) -> tuple[int, str]:
        """Bytes of the real compressed artefact file; an estimate where no artefact format exists."""
        if self.artifact_id not in REGISTRY:  # an upload matched to no zoo architecture: no artefact format
            return measure.zlib_size(comp.model), SIZE_ESTIMATE
        return len(artifact_bytes(comp, self.artifact_id)), SIZE_ARTIFACT

    def latency_of(self, model: nn.Module, kernels: str, batch: int, threads: int,
                   budget: float) -> tuple[measure.Latency, str]:
        """Latency depends only on structure and kernels, so equal structures share one measurement.

        fp32 conv nets at batch >= 32 are timed in both memory formats and the faster counts (here
        channels_last made dense ResNet-20 1.35x faster at batch 128 but a 50 % structured one 0.8x);
        the returned kernels label says which ran. At batch < 32 the gain was 1.0-1.1x: not timed."""
        conv = len(self.spec.input_shape) == 3 and any(isinstance(m, nn.Conv2d) for m in model.modules())
        both = kernels == "fp32" and conv and batch >= 32
        key = (_structure_key(model, kernels), batch, threads, both)
        with self._lock:
            if key not in self._latency:
                lat = measure.latency(model, self.spec.input_shape, batch=batch, threads=threads, min_run_time=budget)
                label = kernels
                if both:
                    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
                    cl = measure.latency(fast, self.spec.input_shape, batch=batch, threads=threads,
                                         min_run_time=budget, memory_format=torch.channels_last)
                    if cl.ms_p50 < lat.ms_p50:
                        lat, label = cl, f"{kernels} channels_last"
                self._latency[key] = (lat, label)
            return self._latency[key]
