"""One headline per recipe: the numbers every page shows for one result, and the words around them.

Explore's cards, Compare, the HTML report and ``evaluate --json`` all read ``headline(result)``, so no two
screens can disagree. The rule that made them disagree: a card showed the two medians (2.81 ms vs dense
2.34 ms) beside the paired *fastest-call* ratio (1.04×), and the every-runtime chart showed 0.997 ms beside
"10.1×" (a runtime ratio times a second ratio from another window). Here the speed-up is always the
ratio of the two numbers shown beside it: ``reference_ms / latency_ms`` (the reference is the dense model
timed in the same window, on the same runtime, threads and batch). The paired fastest-call ratio stays in
the result (``speedup``, the store, the solver); it is not what a headline prints.

Every latency carries its runtime, threads and batch, and its noisy flag: a noisy latency still shows,
marked noisy wherever its speed-up does.

Pure: no Streamlit, no torch calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from compress_core.deploy.runtimes import RUNTIMES

LABELS = RUNTIMES.labels()
SAME = 0.005  # a ratio within ± 0.5 % of 1 reads "same as dense"


def runtime_label(key: str | None) -> str:
    return LABELS.get(key or "torch", str(key))


def ratio(reference_ms: float | None, ms: float | None) -> float | None:
    """``reference_ms / ms``: how many times faster ``ms`` is; None when either is missing or not positive."""
    if reference_ms is None or ms is None:
        return None
    if not (math.isfinite(reference_ms) and math.isfinite(ms)) or reference_ms <= 0 or ms <= 0:
        return None
    return float(reference_ms) / float(ms)


def speed_words(speedup: float | None) -> str:
    """ "1.20× faster", "1.25× slower" (never "0.80× faster"), "same as dense", or ""."""
    if speedup is None:
        return ""
    if abs(speedup - 1) < SAME:
        return "same as dense"
    return f"{speedup:.2f}× faster" if speedup > 1 else f"{1 / speedup:.2f}× slower"


@dataclass(frozen=True)
class Headline:
    """What one result says on every page; ``speedup`` is ``dense_latency_ms / latency_ms``, the numbers shown."""

    model: str
    recipe_label: str
    accuracy: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    eval_samples: int
    dense_accuracy: float | None
    params_nonzero: int
    params_total: int
    dense_params: int | None
    file_bytes: int
    dense_file_bytes: int | None
    latency_ms: float | None  # median per call on ``runtime``
    dense_latency_ms: float | None  # the dense model, same runtime, threads and batch, same window
    speedup: float | None  # dense_latency_ms / latency_ms
    runtime: str
    runtime_label: str
    threads: int | None
    batch: int | None
    kernels: str
    noisy: bool
    noisy_reason: str
    eager_dense_ms: float | None = None  # eager PyTorch dense fp32, same threads and batch (other runtimes)
    speedup_vs_eager: float | None = None  # eager_dense_ms / latency_ms

    def where(self) -> str:
        """ "ONNX Runtime · 2 threads · batch 1" """
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else "threads ?"
        return f"{self.runtime_label} · {threads} · batch {self.batch if self.batch is not None else '?'}"

    def latency_text(self) -> str:
        """ "2.81 ms (median) · ONNX Runtime · 2 threads · batch 1", or "not measured"."""
        if self.latency_ms is None:
            return "not measured"
        return f"{self.latency_ms:.3g} ms (median) · {self.where()}" + (" · noisy" if self.noisy else "")

    def speed_text(self) -> str:
        """ "1.20× faster: dense 2.34 ms ÷ 1.95 ms", marked noisy when it is; "" when not measured."""
        if self.speedup is None or self.latency_ms is None or self.dense_latency_ms is None:
            return ""
        text = f"{speed_words(self.speedup)}: dense {self.dense_latency_ms:.3g} ms ÷ {self.latency_ms:.3g} ms"
        return text + (" (noisy)" if self.noisy else "")

    def eager_text(self) -> str:
        """ "2.35× faster vs eager PyTorch dense 2.34 ms", or "" on eager PyTorch itself / unmeasured."""
        if self.runtime == "torch" or self.speedup_vs_eager is None or self.eager_dense_ms is None:
            return ""
        words = speed_words(self.speedup_vs_eager).replace("same as dense", "same")
        return f"{words} vs eager PyTorch dense {self.eager_dense_ms:.3g} ms" + (" (noisy)" if self.noisy else "")

    def to_dict(self) -> dict:
        return asdict(self)


def _int(value: object) -> int | None:
    """A count from a Result or a table row (where pandas may have made it a float, or NaN); None if absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)  # type: ignore[call-overload]


def _dense_file(result: Mapping) -> int | None:
    value = result.get("dense_artifact_bytes") or result.get("dense_size_bytes")
    return int(value) if value else None


def headline(result: Mapping) -> Headline:
    """The headline of a ``Result.to_dict()`` (eager or runtime: the same keys)."""
    runtime = str(result.get("runtime") or "torch")
    ms, dense_ms = result.get("latency_ms_p50"), result.get("dense_latency_ms_p50")
    measured = ms is not None
    eager = result.get("eager_latency_ms_p50") if runtime != "torch" else dense_ms
    noisy = bool(result.get("latency_noisy")) and measured
    return Headline(
        model=str(result.get("model", "")),
        recipe_label=str(result.get("recipe_label", "")),
        accuracy=float(result["accuracy"]),
        accuracy_ci_low=float(result["accuracy_ci_low"]),
        accuracy_ci_high=float(result["accuracy_ci_high"]),
        eval_samples=int(result["eval_samples"]),
        dense_accuracy=result.get("dense_accuracy"),
        params_nonzero=int(result["params_nonzero"]),
        params_total=int(result["params_total"]),
        dense_params=result.get("dense_params"),
        file_bytes=int(result["size_bytes"]),
        dense_file_bytes=_dense_file(result),
        latency_ms=float(ms) if ms is not None else None,
        dense_latency_ms=float(dense_ms) if ms is not None and dense_ms is not None else None,
        speedup=ratio(dense_ms, ms),
        runtime=runtime,
        runtime_label=runtime_label(runtime),
        threads=_int(result.get("latency_threads")),
        batch=_int(result.get("latency_batch")),
        kernels=str(result.get("latency_kernels") or ""),
        noisy=noisy,
        noisy_reason=str(result.get("latency_note") or "") if noisy else "",
        eager_dense_ms=float(eager) if ms is not None and eager is not None else None,
        speedup_vs_eager=ratio(eager, ms),
    )
