"""The recovery levels, one registered class each (``RECOVERY``), and the report they fill.

A level carries its vocabulary (``key``, ``label``, ``description``, ``needs``: None or "images") and
three methods: ``check_model`` (a specific ValueError when the model has nothing for it, before any
work), ``check_inputs`` (the same for what the caller passes) and ``apply_`` (change the model in place
and write what was done into the ``RecoveryReport``). ``recover_`` (the package) runs one of them.

Adding a level is one class here decorated with ``@register``, plus its key and recipe-label word in
``base.recipe.RECOVERY_WORDS`` (the recipe's schema) and its test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar, cast

import torch
from torch import nn

from compress_core.base.qtensor import QTensor
from compress_core.base.recipe import QuantSpec
from compress_core.base.records import Progress
from compress_core.base.registry import Registry
from compress_core.engine.recover.bn import anchored_reestimate_, batchnorms
from compress_core.engine.recover.reconstruct import PRUNABLE, reconstruct_

UNIFORM_SCHEMES = ("symmetric", "asymmetric")  # the grids GPTQ rounding can stay on
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


@dataclass(frozen=True)
class Inputs:
    """What a level works from besides the two models: calibration images (training data) and, for
    reconstruction, the pruning masks and the k-bit codes to keep in step."""

    images: list[torch.Tensor]
    masks: dict[str, torch.Tensor] | None = None
    qcodes: dict[str, QTensor] | None = None
    quant: QuantSpec | None = None
    seed: int = 0
    progress: Progress | None = None


class RecoveryLevel:
    """One level of post-training recovery (the package docstring says what each does and why)."""

    key: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    needs: ClassVar[str | None] = "images"

    def check_model(self, model: nn.Module) -> None:
        """A specific ValueError when ``model`` has nothing this level can work on."""

    def check_inputs(self, inputs: Inputs) -> None:
        """A specific ValueError when what the caller passed cannot serve this level."""
        if self.needs == "images" and not inputs.images:
            raise ValueError(
                f"recovery '{self.key}' needs calibration images (training data), which are not available "
                "for this model; use recovery 'none'"
            )

    def samples(self, inputs: Inputs) -> int:
        """The calibration images this level uses (the report's ``samples``)."""
        return sum(len(x) for x in inputs.images) if self.needs else 0

    def apply_(self, model: nn.Module, dense: nn.Module, inputs: Inputs, report: RecoveryReport) -> None:
        """Recover ``model`` in place (``dense`` is only read) and say what was done in ``report``."""
        raise NotImplementedError


RECOVERY: Registry[RecoveryLevel] = Registry("recovery level")
register = RECOVERY.register


@register
class NoRecovery(RecoveryLevel):
    key = "none"
    label = "None (one-shot)"
    description = "Nothing: the compressed model is measured as it is, right after compression."
    needs = None

    def apply_(self, model: nn.Module, dense: nn.Module, inputs: Inputs, report: RecoveryReport) -> None:
        return None


@register
class BatchNormRecovery(RecoveryLevel):
    key = "bn"
    label = "BatchNorm re-estimation"
    description = (
        "Re-estimate every BatchNorm layer's running statistics on training images (AdaBN): one forward "
        "pass, weights untouched."
    )

    def check_model(self, model: nn.Module) -> None:
        if not batchnorms(model):
            raise ValueError("this model has no BatchNorm layer to re-estimate; use recovery 'reconstruct' or 'none'")

    def apply_(self, model: nn.Module, dense: nn.Module, inputs: Inputs, report: RecoveryReport) -> None:
        report.notes += _bn_level(model, dense, inputs.images, report.samples, inputs.progress)


@register
class Reconstruction(RecoveryLevel):
    key = "reconstruct"
    label = "Layer-wise reconstruction"
    description = (
        "Re-fit each compressed layer to the dense model's outputs on training images by least squares "
        "(SparseGPT/OBC-style for pruned weights, GPTQ rounding for k-bit weights, ThiNet-style re-fits "
        "after removed channels, bias correction)."
    )

    def check_model(self, model: nn.Module) -> None:
        if not any(isinstance(m, PRUNABLE) for m in model.modules()):
            raise ValueError("this model has no Conv2d/Linear layer to reconstruct; use recovery 'none'")

    def check_inputs(self, inputs: Inputs) -> None:
        super().check_inputs(inputs)
        quant = inputs.quant
        if quant is None or quant.int8 or quant.bits > 8:  # no k-bit weights to keep on their grid
            return
        if quant.scheme not in UNIFORM_SCHEMES:
            raise ValueError(
                f"layer-wise reconstruction keeps weights on a uniform k-bit grid; the {quant.scheme} scheme "
                "has none: use recovery 'bn'"
            )
        if inputs.qcodes is None:
            raise ValueError(
                "reconstructing k-bit weights needs their integer codes (qcodes) to update; pass quant=None "
                "if the weights are not quantized yet"
            )

    def apply_(self, model: nn.Module, dense: nn.Module, inputs: Inputs, report: RecoveryReport) -> None:
        images, samples = inputs.images, report.samples
        rec = reconstruct_(model, dense, images, inputs.masks, inputs.qcodes, inputs.quant, inputs.seed)
        report.layers = rec.rows
        report.notes += _summary(rec.rows) + rec.notes
        if batchnorms(model) and any(r.get("unfitted") for r in rec.rows):
            # every batch ran to the end (the Stepper's finish), so no output is missing
            outputs, dense_outputs = cast(list[torch.Tensor], rec.outputs), cast(list[torch.Tensor], rec.dense_outputs)
            report.notes += _final_bn(model, dense, images, samples, outputs, dense_outputs)
        elif batchnorms(model):
            report.notes.append(NO_FINAL_BN)


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
