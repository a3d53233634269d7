"""``RuntimeBench``: a Workbench measured on the runtime you would ship it on (``compress_core.deploy.runtimes``).

For a recipe, ``RuntimeBench.of(wb).on_runtime(recipe, runtime, settings)`` exports the compressed float
model to the runtime (``torch``, ``onnxruntime``, ``openvino``, ``executorch``), with the runtime's own int8
for an int8 recipe (calibrated on ``wb.calib()``, training images), and measures:

- accuracy **on the runtime's session**, on the same evaluation set as ``Workbench.evaluate``'s mode,
  with agreement against eager PyTorch's dense fp32 predictions;
- latency paired (``timing.paired``) against **that runtime's** dense fp32 session at the same batch and
  threads: ``speedup``; and ``speedup_vs_eager``, that speed-up times the runtime's dense speed-up over
  eager PyTorch dense fp32 (``deploy.timings.vs_eager``);
- ``deploy_file_bytes`` (the file(s) ``files`` returns) and ``seconds["deploy_s"]`` (export, int8
  quantization and compilation).

``torch`` there is the Workbench's own measurement plus the size of the file the torch adapter writes
(``.pt2``, or a TorchScript ``.pt`` for FX int8); ``evaluate(recipe, "torch", ...)`` is the Workbench's
measurement alone (what sweeps and the solver store). Sessions are kept per recipe (the weights change with
every slider move, so the export is per recipe; another batch or thread count reuses it where the runtime
can), latencies per structure (equal shapes and kernels share one timing). One RuntimeBench per Workbench
(``of``): its caches live as long as the Workbench does.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import torch

from compress_core.base.lru import LRU
from compress_core.base.recipe import Recipe
from compress_core.base.records import Compressed, Progress, Result, check_eval_mode
from compress_core.base.settings import MeasureSettings
from compress_core.bench.parts import fields_of, forgets_on
from compress_core.bench.workbench import Workbench
from compress_core.deploy.runtimes import RUNTIMES, Deployed, RuntimeUnsupported, get_runtime
from compress_core.deploy.runtimes.torch_deployed import TorchDeployed
from compress_core.deploy.timings import RuntimeTimings
from compress_core.engine import measure

STATIC_EVAL_BATCH = 100  # static-batch sessions (OpenVINO) predict the test set in batches of this many
_ATTR = "_runtime_bench"  # where ``RuntimeBench.of`` keeps a Workbench's bench
_BENCHES_LOCK = threading.Lock()


class RuntimeBench:
    """One Workbench on every runtime: its deployed sessions, runtime timings and runtime results."""

    def __init__(self, wb: Workbench) -> None:
        self.wb = wb
        self.lock = threading.RLock()
        self.sessions: LRU[Deployed] = LRU(8)  # (recipe json, runtime, batch, threads)
        self.latest: LRU[Deployed] = LRU(8)  # (recipe json, runtime): the last session, to reconfigure
        self.results: LRU[dict] = LRU(256)  # (settings key, runtime): ``result``'s dicts
        self.deploy_s: dict[tuple, float] = {}  # (recipe json, runtime, batch): export + compile seconds
        self.timings = RuntimeTimings(wb.model, wb.model_id, tuple(wb.spec.input_shape), self.lock)

    @classmethod
    def of(cls, wb: Workbench) -> RuntimeBench:
        """The one RuntimeBench of ``wb``, made on first use and kept on the Workbench itself, so that its caches
        live exactly as long as the Workbench does (a weak-keyed map would keep both alive: the bench holds it)."""
        with _BENCHES_LOCK:
            rb = vars(wb).get(_ATTR)
            if not isinstance(rb, cls):
                rb = cls(wb)
                setattr(wb, _ATTR, rb)
            return rb

    # -- measurements ---------------------------------------------------------------------------
    def evaluate(
        self,
        recipe: Recipe,
        runtime: str = "torch",
        settings: MeasureSettings | None = None,
        progress: Progress | None = None,
        compressed: Compressed | None = None,
    ) -> Result:
        """``recipe`` measured on ``runtime``: eager PyTorch is the Workbench's own ``evaluate``, any other
        runtime ``on_runtime``. Raises ``RuntimeUnsupported`` (one line) for a model the runtime cannot take."""
        if runtime == "torch":
            return self.wb.evaluate(recipe, settings, progress, compressed=compressed)
        return self.on_runtime(recipe, runtime, settings, progress, compressed)

    def on_runtime(
        self,
        recipe: Recipe,
        runtime: str,
        settings: MeasureSettings | None = None,
        progress: Progress | None = None,
        compressed: Compressed | None = None,
    ) -> Result:
        """``recipe`` measured on ``runtime``'s session as a ``Result`` (raises ``RuntimeUnsupported``, one line);
        on ``torch`` the Workbench's measurement with the torch file's bytes."""
        s = (settings or MeasureSettings()).resolved()
        check_eval_mode(s.mode)
        threads = s.threads or torch.get_num_threads()
        get_runtime(runtime)  # an unknown key fails before any work
        if runtime == "torch":
            base = self.wb.evaluate(recipe, s, progress, compressed=compressed)
            dep = self.session(recipe, "torch", s.batch, threads, compressed)
            return dataclasses.replace(
                base,
                runtime="torch",
                deploy_file_bytes=_file_bytes(dep),
                speedup_vs_eager=base.speedup,
                eager_latency_ms_p50=base.dense_latency_ms_p50,
            )
        comp = compressed or self.wb.compressed(recipe)
        base = self.wb.evaluate(recipe, s.replace(latency=False), compressed=compressed)
        if progress is not None:
            progress(0.0, f"exporting to {runtime}")
        dep = self.session(recipe, runtime, s.batch, threads, comp)
        t0 = time.perf_counter()
        acc, lost = self._accuracy(dep, s.mode, progress)
        seconds = {
            **base.seconds,
            "eval_s": time.perf_counter() - t0,
            "deploy_s": self.deploy_s.get((recipe.to_json(), runtime, s.batch), 0.0),
        }
        lat = self._latency_fields(recipe, dep, comp, runtime, s.budget_s, progress) if s.latency else {}
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
            forgets=lost,  # from the runtime's own predictions, not the eager ones
            deploy_file_bytes=_file_bytes(dep),
            simulated=notes,
            seconds=seconds,
            **{"latency_kernels": dep.kernels, **lat},  # the runtime's kernels, timed or not
        )

    def _accuracy(self, dep: Deployed, mode: str, progress: Progress | None) -> tuple[measure.Accuracy, dict]:
        """Accuracy on the runtime's session, and what it forgets against the eager dense model (``bench.forgets``)."""
        data = self.wb.eval_data(mode)
        ev = dep.reconfigure(batch=STATIC_EVAL_BATCH) if dep.static_batch and dep.batch < STATIC_EVAL_BATCH else None
        ev = ev or dep
        logits = []
        for lo in range(0, len(data.x), 1000):
            if progress is not None:
                progress(lo / max(len(data.x), 1), f"evaluating on {dep.runtime}: {lo:,} of {len(data.x):,} images")
            logits.append(ev.predict(data.x[lo : lo + 1000]))
        out = torch.cat(logits)
        preds = out.argmax(1)
        ref, ref_probs = self.wb.dense_outputs(data)
        acc = measure.accuracy(preds, data.y, ref)
        if not getattr(data, "labelled", True):
            nan = float("nan")
            acc = dataclasses.replace(acc, accuracy=nan, ci_low=nan, ci_high=nan)
        return acc, forgets_on(data, ref, ref_probs, preds, torch.softmax(out.float(), 1))

    def _latency_fields(
        self, recipe: Recipe, dep: Deployed, comp: Compressed, runtime: str, budget_s: float, progress: Progress | None
    ) -> dict:
        """The Result's latency fields on the runtime: paired with its dense fp32, and scaled to eager PyTorch."""
        if progress is not None:
            progress(0.9, f"timing on {runtime}")
        pair = self.timings.latency_on(recipe.quant.int8, dep, comp, runtime, budget_s)
        factor, _, eager_ms = self.timings.vs_eager(runtime, dep.batch, dep.threads, budget_s)
        return {
            **fields_of(pair, dep.kernels),
            "speedup_vs_eager": pair.speedup * factor,
            "eager_latency_ms_p50": eager_ms,
        }

    def result(
        self,
        recipe: Recipe,
        runtime: str = "torch",
        settings: MeasureSettings | None = None,
        progress: Progress | None = None,
    ) -> dict:
        """``on_runtime`` as ``Result.to_dict()`` plus ``error`` (None), cached per (recipe, settings, runtime);
        a runtime that cannot take the model gives ``{"runtime", "error"}`` instead."""
        s = settings or MeasureSettings()
        key = (s.key(recipe), runtime)
        if (hit := self.results.get(key)) is not None:
            return hit
        reason = RUNTIMES[runtime].available() if runtime in RUNTIMES else None
        if reason is not None:
            return {"runtime": runtime, "error": f"{runtime} is not usable here: {reason}"}
        try:
            out = {**self.on_runtime(recipe, runtime, s, progress).to_dict(), "error": None}
        except RuntimeUnsupported as exc:
            out = {"runtime": runtime, "error": str(exc)}
        self.results.put(key, out)
        return out

    def peek(self, recipe: Recipe, runtime: str, settings: MeasureSettings | None = None) -> dict | None:
        """The cached ``result`` with these arguments, or None; never computes anything."""
        return self.results.get(((settings or MeasureSettings()).key(recipe), runtime))

    # -- sessions and files ---------------------------------------------------------------------
    def session(
        self, recipe: Recipe, runtime: str, batch: int = 1, threads: int | None = None, comp: Compressed | None = None
    ) -> Deployed:
        """The recipe deployed on ``runtime`` (cached); raises ``RuntimeUnsupported`` with one line."""
        threads, rt = threads or torch.get_num_threads(), get_runtime(runtime)
        key = (recipe.to_json(), runtime, batch, threads)
        with self.lock:
            if (hit := self.sessions.get(key)) is not None:
                return hit
            comp = comp or self.wb.compressed(recipe)
            shape = tuple(self.wb.spec.input_shape)
            sibling = self.latest.get(key[:2])  # the same file(s) at another batch or thread count
            dep = sibling.reconfigure(batch, threads) if sibling is not None else None
            if dep is None and runtime == "torch":  # the Workbench's own model (no re-quantization)
                int8 = comp.kernels != "fp32"
                dep = TorchDeployed(
                    comp.model, f"torch {comp.kernels}", shape, batch, threads, int8, "pt" if int8 else "pt2"
                )
            elif dep is None:
                t0 = time.perf_counter()
                int8 = recipe.quant.int8
                dep = rt.deploy(comp.float_model, shape, batch, threads, int8, self.wb.calib() if int8 else None)
                self.deploy_s[(key[0], runtime, batch)] = time.perf_counter() - t0
            self.sessions.put(key, dep)
            self.latest.put(key[:2], dep)
            return dep

    def files(self, recipe: Recipe, runtime: str, batch: int = 1, threads: int | None = None) -> dict[str, bytes] | str:
        """The deployable file(s) of ``recipe`` on ``runtime``, by file name (ExecuTorch's ``.pte`` takes
        exactly ``batch`` samples); a str is the runtime's one-line reason it cannot take the model."""
        try:
            files = self.session(recipe, runtime, batch, threads).files()
        except RuntimeUnsupported as exc:
            return str(exc)
        slug = re.sub(r"[^a-z0-9]+", "-", recipe.label().lower()).strip("-")
        stem = f"{self.wb.model_id}-{slug}" + (f"-batch{batch}" if not RUNTIMES[runtime].dynamic_batch else "")
        return {stem + suffix: data for suffix, data in files.items()}

    def save(
        self,
        recipe: Recipe,
        runtime: str,
        path: str,
        batch: int = 1,
        threads: int | None = None,
        comp: Compressed | None = None,
    ) -> list[str]:
        """Write the deployable file(s) at ``path`` (its suffix replaced by the runtime's, e.g. ``.xml`` and
        ``.bin``); returns the paths written. Raises ``RuntimeUnsupported`` or ``ValueError`` (one line)."""
        dep = self.session(recipe, runtime, batch, threads, comp)
        try:
            return [str(p) for p in dep.save(path)]
        except OSError as exc:
            raise ValueError(f"cannot write the deployable file at {path}: {exc.strerror or exc}") from None


def _file_bytes(dep: Deployed) -> int | None:
    try:
        return dep.file_bytes
    except ValueError:  # a deployment with no file format (RuntimeUnsupported is a ValueError)
        return None
