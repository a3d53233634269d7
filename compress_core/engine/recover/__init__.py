"""Post-training recovery: win back accuracy after pruning / quantization without training.

Levels (``RECOVERY``, a ``base.registry.Registry`` of one class each in ``levels``; ``LEVELS`` is its keys),
each on calibration batches of *training* images (never test data):

- ``none``: nothing.
- ``bn``: re-estimate every BatchNorm's running statistics (``bn``; AdaBN, Li et al. 2016; the BN
  re-estimation of Nagel et al. 2021). One forward pass, weights untouched.
- ``reconstruct``: layer-wise reconstruction of every compressed Conv2d/Linear, in forward order,
  against the dense model's outputs (``reconstruct``): exact mask-fixed least squares for pruned
  weights (the problem OBC and SparseGPT solve, Frantar & Alistarh 2022, 2023), least-squares re-fits
  of the layers that lost input channels (He et al. 2017; ThiNet, Luo et al. 2017), GPTQ rounding for
  k-bit weights (Frantar et al. 2023), bias correction (Nagel et al. 2019), then ``bn``.

``recover_(model, dense, level, images, masks=, qcodes=, quant=, seed=)`` changes ``model`` (a private
copy of the compressed float model) in place, updates ``qcodes`` for k-bit layers so that they
dequantize to the new weights exactly, never touches ``dense``, and returns a ``RecoveryReport``.
Calibration sizes recommended for the callers: ``BN_SAMPLES`` and ``RECONSTRUCT_SAMPLES`` images.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from compress_core.base.qtensor import QTensor
from compress_core.base.recipe import QuantSpec
from compress_core.base.records import Progress
from compress_core.engine.recover.bn import batchnorms
from compress_core.engine.recover.levels import (
    NO_FINAL_BN,
    RECOVERY,
    UNIFORM_SCHEMES,
    Inputs,
    RecoveryLevel,
    RecoveryReport,
    register,
)

__all__ = [
    "BN_SAMPLES",
    "LEVELS",
    "NO_FINAL_BN",
    "RECONSTRUCT_SAMPLES",
    "RECOVERY",
    "UNIFORM_SCHEMES",
    "Inputs",
    "RecoveryLevel",
    "RecoveryReport",
    "batchnorms",
    "check_level",
    "default_level",
    "recover_",
    "register",
    "usable_levels",
]

LEVELS = tuple(RECOVERY)  # the registered levels' keys, weakest first
BN_SAMPLES = 1024  # images for BN re-estimation (ResNet-56: 1.3-1.4 s in 2 lanes on a 2-core Xeon, RESULTS section 9).
# 256 or 512 would be 2-4x faster but moved unstructured 90 % by 1.0-7.5 pp on the full test set (ResNet-20, -56): kept.
RECONSTRUCT_SAMPLES = 1024  # images for layer-wise reconstruction (its final BN re-estimation uses the same)
CALIBRATION_BATCH = 64  # images per calibration batch the callers should make


def _level(level: object) -> RecoveryLevel:
    if level not in RECOVERY:
        raise ValueError(f"recovery must be one of {', '.join(RECOVERY)}; got {level!r}")
    return RECOVERY[str(level)]


def check_level(model: nn.Module, level: object) -> str:
    """``level`` if ``model`` supports it; a specific ValueError (before any work) otherwise."""
    _level(level).check_model(model)
    return str(level)


def usable_levels(model: nn.Module) -> tuple[str, ...]:
    """The levels ``check_level`` accepts for ``model``, weakest first."""
    out = []
    for level in RECOVERY:
        try:
            out.append(check_level(model, level))
        except ValueError:
            continue
    return tuple(out)


def default_level(model: nn.Module) -> str:
    """The interactive default: ``bn`` for models with BatchNorm, else ``reconstruct``.

    Measured on this project's 2-core machine (quick evaluation, 1,000 images; benchmarks/RESULTS.md
    section 12): a ResNet-20 slider move takes 0.6-0.7 s p50 with ``none``, 1.9 s with ``bn`` and 4-5 s with
    ``reconstruct`` against the ~1.5 s a move may take, and ``bn`` lifts structured 30 % from 63.5 % to 83.3 %;
    on the LeNets (no BatchNorm, so no ``bn``) ``reconstruct`` takes 0.3-0.4 s.
    """
    usable = usable_levels(model)
    if "bn" in usable:
        return "bn"
    return "reconstruct" if "reconstruct" in usable else "none"


def recover_(
    model: nn.Module,
    dense: nn.Module,
    level: str,
    images: list[torch.Tensor],
    *,
    masks: dict[str, torch.Tensor] | None = None,
    qcodes: dict[str, QTensor] | None = None,
    quant: QuantSpec | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> RecoveryReport:
    """Recover ``model`` in place at ``level`` (module docstring); ``dense`` is only read. ``progress`` hears
    every batch of the BatchNorm passes (a caller may raise from it to abandon the recovery)."""
    check_level(model, level)
    how = RECOVERY[level]
    inputs = Inputs(list(images), masks, qcodes, quant, seed, progress)
    how.check_inputs(inputs)
    t0 = time.perf_counter()
    report = RecoveryReport(level, 0.0, how.samples(inputs))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        how.apply_(model, dense, inputs, report)
    model.eval()
    report.seconds = time.perf_counter() - t0
    return report
