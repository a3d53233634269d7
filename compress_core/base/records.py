"""Plain records every stage passes around; the bottom of the import graph (torch and nothing of ours).

- ``Progress``: the one progress-callback type, ``progress(fraction in [0, 1], message)``.
- ``Calibration``: the training images a stage may look at (importance scores, int8 activation ranges,
  fine-tuning teachers), with labels where the data has them. Never test images.
- ``StructureReport``: what structured pruning removed, layer by layer.
- ``Compressed``: a compressed model and what was done to it (stages fill it in).
- ``Result``: the measured numbers of one recipe on one model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from compress_core.base.qtensor import QTensor
    from compress_core.base.recipe import Recipe

Progress = Callable[[float, str], None]

# How much of the test set an evaluation sees: a fixed stratified subset, or all of it.
EVAL_MODES = ("quick", "full")

# How ``Result.size_bytes`` was obtained: the real artefact file, or an estimate where no artefact exists.
SIZE_ARTIFACT = "PruneScope artefact file (.psz)"
SIZE_ESTIMATE = "zlib-compressed torch.save state_dict (estimate)"
Batches = list[torch.Tensor]
LabelledBatches = list[tuple[torch.Tensor, torch.Tensor]]


def span(progress: Progress | None, lo: float, hi: float, prefix: str = "") -> Progress | None:
    """Map a [0, 1] progress callback onto [lo, hi] of the caller's, prefixing messages."""
    if progress is None:
        return None
    return lambda f, msg: progress(lo + (hi - lo) * min(max(f, 0.0), 1.0), prefix + msg)


def check_eval_mode(mode: object) -> str:
    if mode not in EVAL_MODES:
        raise ValueError(
            f"eval must be 'quick' or 'full' (the eval mode: a stratified subset or the whole test set); got {mode!r}"
        )
    return str(mode)


def size_is_estimate(size_method: object) -> bool:
    """Whether a result's ``size_method`` names an estimate rather than a real file."""
    return "estimate" in str(size_method or "").lower()


def dense_file_bytes(res: Mapping[str, Any]) -> int:
    """The dense model's size in the format of a result's ``size_bytes``: its artefact where that was
    measured (``dense_artifact_bytes``), else ``dense_size_bytes`` (older results: the torch.save file)."""
    return int(res.get("dense_artifact_bytes") or res["dense_size_bytes"])


@dataclass(frozen=True)
class Calibration:
    """Training batches for the stages that need data; both lists may be empty (no data available)."""

    images: Batches = field(default_factory=list)
    labelled: LabelledBatches = field(default_factory=list)
    recovery: Batches = field(default_factory=list)  # a larger sample for post-training recovery (else images)

    @property
    def recovery_images(self) -> Batches:
        return self.recovery or self.images

    @property
    def empty(self) -> bool:
        return not self.images and not self.labelled


NO_CALIBRATION = Calibration()


@dataclass(frozen=True)
class StructureReport:
    """The outcome of structured pruning: channels, parameters and MACs before and after."""

    criterion: str
    scope: str
    sparsity: float
    residual: bool
    shortcuts_rewritten: int
    ignored: list[str]
    overrides_unused: list[str]
    groups: int
    groups_pruned: int
    layers: list[dict[str, Any]]  # {"layer", "in_before", "in_after", "out_before", "out_after"}
    channels_before: dict[str, int]  # output channels of the layers that lost some
    channels_after: dict[str, int]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    skeleton: dict[str, dict[str, Any]]  # enough to rebuild the pruned architecture (prune.skeleton)
    steps: list[dict[str, Any]] = field(default_factory=list)  # gradual schedules: one row per step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Compressed:
    """A compressed model and what was done to it."""

    model: nn.Module  # what runs: fp32 module, or an int8 GraphModule
    float_model: nn.Module  # the pruned / weight-quantized float model before int8 conversion
    recipe: Recipe
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # unstructured keep-masks
    qcodes: dict[str, QTensor] = field(default_factory=dict)  # integer codes of quantized weights
    kernels: str = "fp32"  # what latency runs on: fp32 | int8-x86-static | int8-dynamic
    simulated: list[str] = field(default_factory=list)  # what is simulated or estimated, in words
    structure: StructureReport | None = None  # structured pruning report (channels, MACs)
    history: list[dict] = field(default_factory=list)  # fine-tuning log, if any
    recovery: dict | None = None  # the post-training recovery report (compress_core.engine.recover), if any


@dataclass
class Result:
    """Measured values of one recipe on one model (units in the names; fractions, not percents)."""

    model: str
    recipe: dict
    recipe_label: str
    eval_set: str
    eval_samples: int
    accuracy: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    agreement: float | None
    dense_accuracy: float
    params_total: int
    params_nonzero: int
    dense_params: int
    macs: int
    dense_macs: int
    dense_size_bytes: int
    size_bytes: int
    size_method: str
    compression_ratio: float
    latency_ms_p50: float | None
    latency_ms_iqr: float | None
    latency_batch: int
    latency_threads: int
    latency_kernels: str
    dense_latency_ms_p50: float | None
    speedup: float | None
    simulated: list[str]
    seconds: dict[str, float]
    # Paired timing (compress_core.base.timing): the dense baseline is timed interleaved with this model.
    speedup_spread: float | None = None  # half-IQR of the per-round speed-ups / their median (0.05 = ± 5 %)
    latency_noisy: bool | None = None  # timing.verdict: spread or machine load too high to trust as a fact
    latency_load: float | None = None  # 1-minute load average when the latency was timed
    latency_note: str = ""  # why the latency is marked noisy ("" when it is not)
    dense_artifact_bytes: int | None = None  # the dense model in the same file format as ``size_bytes``
    # Post-training recovery (recipe.recovery): ``accuracy`` is after it; this is the same recipe without it.
    accuracy_oneshot: float | None = None
    recovery_s: float | None = None  # seconds the recovery took (compress_s includes them)
    # Where accuracy and latency were measured (compress_core.deploy): "torch" is eager PyTorch (the
    # Workbench); another runtime's result is measured on its own session, ``speedup`` against its own dense fp32.
    runtime: str = "torch"
    deploy_file_bytes: int | None = None  # the deployable file(s) the runtime loads (.pt2 / .onnx / .xml+.bin / .pte)
    speedup_vs_eager: float | None = None  # against eager PyTorch dense fp32, same batch and threads
    eager_latency_ms_p50: float | None = None  # eager PyTorch dense fp32, per call
    # What the compressed model answers differently from the dense one (``bench.forgets.Forgets.to_dict()``):
    # flips, per-class change, confusion difference, KL. None where not computed (other runtimes, older rows).
    forgets: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Result:
        """The Result of a stored row: a field written before it existed gets its default; unknown keys are ignored."""
        from dataclasses import MISSING, fields

        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d or f.default is MISSING})
