"""Post-training recovery: win back accuracy after pruning / quantization without training.

Levels (``LEVELS``), each on calibration batches of *training* images (never test data):

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
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from compress_core.base.recipe import QuantSpec
from compress_core.base.records import Progress
from compress_core.engine.quantize import QTensor
from compress_core.engine.recover.bn import anchored_reestimate_, batchnorms
from compress_core.engine.recover.reconstruct import PRUNABLE, reconstruct_

__all__ = [
    "BN_SAMPLES",
    "LEVELS",
    "RECONSTRUCT_SAMPLES",
    "RecoveryReport",
    "check_level",
    "default_level",
    "recover_",
    "usable_levels",
]

LEVELS = ("none", "bn", "reconstruct")
BN_SAMPLES = 1024  # images for BN re-estimation (ResNet-56: 1.3-1.4 s in 2 lanes on a 2-core Xeon, RESULTS section 9).
# 256 or 512 would be 2-4x faster but moved unstructured 90 % by 1.0-7.5 pp on the full test set (ResNet-20, -56): kept.
RECONSTRUCT_SAMPLES = 1024  # images for layer-wise reconstruction (its final BN re-estimation uses the same)
UNIFORM_SCHEMES = ("symmetric", "asymmetric")  # the grids GPTQ rounding can stay on
CALIBRATION_BATCH = 64  # images per calibration batch the callers should make
NO_FINAL_BN = (
    "BatchNorm statistics left as they are after reconstruction: each re-fit's bias term already "
    "zeroes the mean output error, and re-estimating the variances would scale the least-squares "
    "outputs away from the dense ones (it cost 0.2-1.1 pp on ResNet-20)"
)


@dataclass
class RecoveryReport:
    level: str
    seconds: float
    samples: int  # calibration images used
    layers: list[dict] = field(default_factory=list)  # per re-fitted layer: name, method, errors before/after
    notes: list[str] = field(default_factory=list)  # what was done, in words (shown on screen)

    def to_dict(self) -> dict:
        return asdict(self)


def check_level(model: nn.Module, level: object) -> str:
    """``level`` if ``model`` supports it; a specific ValueError (before any work) otherwise."""
    if level not in LEVELS:
        raise ValueError(f"recovery must be one of {', '.join(LEVELS)}; got {level!r}")
    if level == "bn" and not batchnorms(model):
        raise ValueError("this model has no BatchNorm layer to re-estimate; use recovery 'reconstruct' or 'none'")
    if level == "reconstruct" and not any(isinstance(m, PRUNABLE) for m in model.modules()):
        raise ValueError("this model has no Conv2d/Linear layer to reconstruct; use recovery 'none'")
    return str(level)


def usable_levels(model: nn.Module) -> tuple[str, ...]:
    """The levels ``check_level`` accepts for ``model``, weakest first."""
    out = []
    for level in LEVELS:
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


def _check_inputs(level: str, images: list[torch.Tensor], quant: QuantSpec | None, qcodes: dict | None) -> None:
    if level != "none" and not images:
        raise ValueError(
            f"recovery '{level}' needs calibration images (training data), which are not available "
            "for this model; use recovery 'none'"
        )
    kbit = level == "reconstruct" and quant is not None and not quant.int8 and quant.bits <= 8
    if kbit and quant.scheme not in UNIFORM_SCHEMES:
        raise ValueError(
            f"layer-wise reconstruction keeps weights on a uniform k-bit grid; the {quant.scheme} scheme "
            "has none: use recovery 'bn'"
        )
    if kbit and qcodes is None:
        raise ValueError(
            "reconstructing k-bit weights needs their integer codes (qcodes) to update; pass quant=None "
            "if the weights are not quantized yet"
        )


def _summary(rows: list[dict]) -> list[str]:
    fitted = [r for r in rows if r.get("kept") == "new"]
    notes = [f"{len(fitted)} of {len(rows)} layer(s) re-fitted to the dense model's outputs"]
    if fitted:
        before = sum(r["error_before"] for r in fitted) / len(fitted)
        after = sum(r["error_after"] for r in fitted) / len(fitted)
        notes[0] += f" (mean relative output error {before:.3f} -> {after:.3f})"
    worse = [r["name"] for r in rows if r.get("kept") == "previous" and not r.get("unfitted")]
    if worse:
        notes.append(
            f"{len(worse)} layer(s) kept their previous weights because the re-fit did not lower their "
            f"output error: {', '.join(worse)}"
        )
    notes += [f"{r['name']}: {r['note']}" for r in rows if r.get("unfitted")]
    return notes


def _bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, m in batchnorms(model) for k, v in m.state_dict().items()}


def _mse(outputs: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    num = sum(float((a - b).double().square().sum()) for a, b in zip(outputs, reference, strict=True))
    return num / max(1, sum(b.numel() for b in reference))


def _bn_level(
    model: nn.Module, dense: nn.Module, images: list[torch.Tensor], samples: int, progress: Progress | None = None
) -> list[str]:
    plain = anchored_reestimate_(model, dense, images, progress)
    notes = [
        f"re-estimated the running statistics of {len(batchnorms(model))} BatchNorm layer(s) on {samples} "
        "training images, as the dense model's statistics shifted by the change measured on them"
    ]
    if plain:
        notes.append(
            f"{len(plain)} BatchNorm layer(s) could not be matched to the dense model's and were "
            f"estimated from the calibration images alone: {', '.join(plain)}"
        )
    return notes


def _final_bn(
    model: nn.Module,
    dense: nn.Module,
    images: list[torch.Tensor],
    samples: int,
    outputs: list[torch.Tensor],
    dense_outputs: list[torch.Tensor],
) -> list[str]:
    """BN re-estimation after a reconstruction that left some layer un-fitted, kept only if it brings the
    calibration outputs closer to the dense model's."""
    saved, before = _bn_state(model), _mse(outputs, dense_outputs)
    notes = _bn_level(model, dense, images, samples)
    with torch.no_grad():
        after = _mse([model(x) for x in images], dense_outputs)
    if after < before:
        return [
            *notes[:1],
            f"(output MSE against the dense model on the calibration images {before:.4g} -> {after:.4g})",
            *notes[1:],
        ]
    model.load_state_dict(saved, strict=False)
    return [
        f"BatchNorm re-estimation after reconstruction skipped: it would have moved the outputs on the "
        f"calibration images away from the dense model's (MSE {before:.4g} -> {after:.4g})"
    ]


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
    images = list(images)
    _check_inputs(level, images, quant, qcodes)
    t0 = time.perf_counter()
    samples = sum(len(x) for x in images) if level != "none" else 0
    report = RecoveryReport(level, 0.0, samples)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if level == "bn":
            report.notes += _bn_level(model, dense, images, samples, progress)
        elif level == "reconstruct":
            rec = reconstruct_(model, dense, images, masks, qcodes, quant, seed)
            report.layers = rec.rows
            report.notes += _summary(rec.rows) + rec.notes
            if batchnorms(model) and any(r.get("unfitted") for r in rec.rows):
                report.notes += _final_bn(model, dense, images, samples, rec.outputs, rec.dense_outputs)
            elif batchnorms(model):
                report.notes.append(NO_FINAL_BN)
    model.eval()
    report.seconds = time.perf_counter() - t0
    return report
