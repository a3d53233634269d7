"""Recover accuracy after pruning: fine-tuning, knowledge distillation and gradual pruning schedules.

- ``finetune_(comp, spec, teacher, progress)`` trains ``comp.float_model`` in place on the model's
  training split (never test data), following ``comp.recipe.finetune``. Unstructured keep-masks are
  re-applied after every optimizer step, so the zeros stay exactly where pruning put them;
  structured pruning needs nothing (removed channels are physically gone).
- Distillation (Hinton et al. 2015): ``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE``,
  with the dense teacher in eval mode under ``no_grad`` (its weights and BN statistics never change).
- ``prune_with_schedule(...)`` prunes in ``steps`` cycles, fine-tuning after each: ``iterative``
  (equal sparsity steps) or ``agp`` (Zhu & Gupta 2017, cubic ramp ``agp_schedule``). The total
  training budget is ``epochs`` whatever the schedule (each cycle trains ``epochs / steps``), so
  schedules compare at equal compute.

Training runs on CUDA when ``torch.cuda.is_available()`` and the model comes back to the CPU at the
end; a GPU is never required. Every run appends to ``comp.history`` one row per epoch
(``kind="epoch"``) and one summary row per cycle (``kind="summary"``: sparsity, seconds, and the
held-out accuracy before/after where the dataset has a held-out split that is cheap to score).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from . import measure
from .prune.unstructured import apply_masks_, masks_from_scores, prunable_layers
from .recipe import FinetuneSpec, PruneSpec

if TYPE_CHECKING:
    from .models import ModelSpec
    from .pipeline import Compressed

Progress = Callable[[float, str], None]
# Augmentation during fine-tuning, (train.fit's augment, augment_px); none for datasets not listed.
# "crop-flip" needs train.fit(augment=...); with an older fit CIFAR trains unaugmented.
AUGMENT = {"mnist": ("shift", 2), "cifar10": ("crop-flip", 4)}
HELDOUT_SPLIT = {"mnist": "heldout"}  # a split disjoint from train and cheap to score (1,000 digits)
# Global gradient-norm clip. Distillation's softened targets make the loss far stiffer than cross-entropy
# near a confident model: at the default lr 0.01, LeNet-5 diverged from 98 % to 10-85 % unclipped.
MAX_GRAD_NORM = 5.0


# -- schedules (pure) -------------------------------------------------------------------------------
def agp_schedule(final: float, steps: int, initial: float = 0.0) -> list[float]:
    """Sparsity after each of ``steps`` pruning steps, Zhu & Gupta's cubic ramp:
    ``s_t = final + (initial - final) * (1 - t / steps) ** 3`` for t = 1..steps (ends at ``final``)."""
    _check_schedule_args(final, steps, initial)
    return [final + (initial - final) * (1.0 - t / steps) ** 3 for t in range(1, steps + 1)]


def iterative_schedule(final: float, steps: int) -> list[float]:
    """Equal sparsity steps ``final * t / steps`` for t = 1..steps, ending exactly at ``final``."""
    _check_schedule_args(final, steps, 0.0)
    return [final * t / steps for t in range(1, steps)] + [final]


def _check_schedule_args(final: float, steps: int, initial: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"a pruning schedule needs an integer number of steps >= 1; got {steps!r}")
    if not 0.0 <= initial <= final < 1.0:
        raise ValueError(f"a pruning schedule needs 0 <= initial <= final < 1; got initial={initial}, final={final}")


def ramp(schedule: str, steps: int) -> list[float]:
    """Fraction of the final sparsity reached after each step (the last is exactly 1.0)."""
    _check_schedule_args(0.0, steps, 0.0)
    if schedule == "agp":
        return [1.0 - (1.0 - t / steps) ** 3 for t in range(1, steps)] + [1.0]
    if schedule == "iterative":
        return [t / steps for t in range(1, steps)] + [1.0]
    raise ValueError(f"schedule must be 'iterative' or 'agp' for gradual pruning; got {schedule!r}")


def structured_step_fraction(previous: float, target: float) -> float:
    """Fraction of the *current* channels to remove to go from cumulative ``previous`` to ``target``."""
    if not 0.0 <= previous <= target < 1.0:
        raise ValueError(f"structured schedule needs 0 <= previous <= target < 1; got {previous}, {target}")
    return 1.0 - (1.0 - target) / (1.0 - previous)


# -- fine-tuning ------------------------------------------------------------------------------------
def training_device() -> torch.device:
    """CUDA when available, else the CPU (never required)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels)``."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * t * t * soft + (1.0 - alpha) * F.cross_entropy(student, labels)


def finetune_(comp: Compressed, spec: ModelSpec | None, teacher: nn.Module | None = None,
              progress: Progress | None = None) -> None:
    """Fine-tune ``comp.float_model`` in place per ``comp.recipe.finetune``, keeping ``comp.masks``."""
    ft = _finetune_spec(comp)
    dataset = _dataset(spec)
    if ft.distill and teacher is None:
        raise ValueError("distillation needs the dense teacher model; pass teacher= (Workbench does this)")
    t0 = time.perf_counter()
    _cycle(comp, ft, dataset, teacher, ft.epochs, cycle=1, sparsity=_current_sparsity(comp),
           progress=_span(progress, 0.0, 1.0, ""))
    _done(progress, t0)


def _finetune_spec(comp: Compressed) -> FinetuneSpec:
    ft = comp.recipe.finetune
    if ft is None:
        raise ValueError("this recipe has no finetune spec; add one (e.g. FinetuneSpec(epochs=1)) to fine-tune")
    return ft


def _dataset(spec: ModelSpec | None) -> str:
    if spec is None:
        raise ValueError("fine-tuning needs the model spec (which dataset to train on); pass spec=")
    return spec.dataset


def _cycle(comp: Compressed, ft: FinetuneSpec, dataset: str, teacher: nn.Module | None, epochs: float, cycle: int,
           sparsity: float | None, progress: Progress | None) -> None:
    """One fine-tuning run: held-out accuracy before, ``fit`` on the device, accuracy after, log rows."""
    model = comp.float_model
    train = data_mod.load(dataset, "train")
    samples = min(ft.max_samples or len(train), len(train))
    if samples < ft.batch_size:
        raise ValueError(f"fine-tuning would see {samples} training images per epoch, fewer than one batch of "
                         f"{ft.batch_size}: raise finetune max_samples or lower batch_size")
    held = _heldout(dataset)
    before = _accuracy(model, held)
    device = training_device()
    t0 = time.perf_counter()
    model.to(device)
    masks = [(m.weight, comp.masks[n].to(device, m.weight.dtype)) for n, m in model.named_modules() if n in comp.masks]
    loss_fn = _loss_fn(ft, teacher, device) if ft.distill else None
    try:
        log = _fit(model, train, ft, epochs, device, masks, loss_fn, progress, dataset)
    finally:
        model.to("cpu")
    seconds = time.perf_counter() - t0
    comp.history.extend({"kind": "epoch", "cycle": cycle, **row} for row in log)
    comp.history.append({
        "kind": "summary", "cycle": cycle, "sparsity": sparsity, "epochs": float(epochs),
        "train_set": train.name, "samples_per_epoch": samples, "distill": ft.distill, "lr": ft.lr,
        "batch_size": ft.batch_size, "device": device.type, "seconds": round(seconds, 3),
        "loss": log[-1]["loss"] if log else None, "heldout_set": held.name if held else None,
        "accuracy_before": before, "accuracy_after": _accuracy(model, held)})


def _fit(model: nn.Module, train, ft: FinetuneSpec, epochs: float, device: torch.device, masks, loss_fn,
         progress: Progress | None, dataset: str) -> list[dict]:
    from .train import fit

    def reapply_masks() -> None:
        with torch.no_grad():
            for weight, keep in masks:
                weight.mul_(keep)

    reapply_masks()  # the weights already obey the masks; this makes it certain before training
    augment, augment_px = AUGMENT.get(dataset, ("shift", 0))
    return fit(model, train.x.to(device), train.y.to(device), epochs=epochs, lr=ft.lr, batch_size=ft.batch_size,
               seed=ft.seed, max_samples=ft.max_samples, loss_fn=loss_fn, after_step=reapply_masks if masks else None,
               progress=progress, augment=augment, augment_px=augment_px, max_grad_norm=MAX_GRAD_NORM)


def _loss_fn(ft: FinetuneSpec, teacher: nn.Module, device: torch.device):
    """Distillation loss against a frozen teacher; a shared teacher is copied rather than moved or
    switched to train mode, so the caller's model never changes."""
    if teacher.training or device.type != "cpu":
        teacher = copy.deepcopy(teacher).eval().to(device)

    def loss(logits: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(inputs)
        return distillation_loss(logits, target, labels, ft.temperature, ft.alpha)

    return loss


def _heldout(dataset: str) -> data_mod.TensorSet | None:
    split = HELDOUT_SPLIT.get(dataset)
    return data_mod.load(dataset, split) if split else None


def _accuracy(model: nn.Module, held: data_mod.TensorSet | None) -> float | None:
    if held is None:
        return None
    return measure.accuracy(measure.predictions(model, held), held.y).accuracy


def _current_sparsity(comp: Compressed) -> float | None:
    """Fraction pruned: zeros under the unstructured masks, else the recipe's nominal sparsity."""
    if not comp.masks:
        return comp.recipe.prune.sparsity if comp.recipe.prune.active else None
    total = sum(m.numel() for m in comp.masks.values())
    return 1.0 - sum(int(m.sum()) for m in comp.masks.values()) / total


# -- progress ---------------------------------------------------------------------------------------
def _span(progress: Progress | None, lo: float, hi: float, prefix: str) -> Progress | None:
    """Map a [0, 1] progress callback onto [lo, hi] of the caller's, prefixing messages."""
    if progress is None:
        return None
    return lambda f, msg: progress(lo + (hi - lo) * min(max(f, 0.0), 1.0), prefix + msg)


def _done(progress: Progress | None, t0: float) -> None:
    if progress is not None:
        progress(1.0, f"fine-tuning done in {time.perf_counter() - t0:.1f} s")


# -- gradual pruning --------------------------------------------------------------------------------
def prune_with_schedule(comp: Compressed, spec: ModelSpec | None, calib, labelled, teacher: nn.Module | None = None,
                        progress: Progress | None = None) -> None:
    """Prune ``comp.float_model`` to ``recipe.prune`` in ``finetune.steps`` prune/fine-tune cycles."""
    ft = _finetune_spec(comp)
    p = comp.recipe.prune
    dataset = _dataset(spec)
    if ft.distill and teacher is None:
        teacher = copy.deepcopy(comp.float_model).eval()  # still dense here: it is the teacher
    fractions = ramp(ft.schedule, ft.steps)
    prune_step = _unstructured_step if p.kind == "unstructured" else _structured_step(spec)
    t0 = time.perf_counter()
    previous: PruneSpec | None = None
    for t, r in enumerate(fractions, start=1):
        target = p if t == len(fractions) else _scaled(p, r)
        lo, hi = (t - 1) / len(fractions), t / len(fractions)
        label = f"cycle {t}/{len(fractions)}, sparsity {target.sparsity:.1%}: "
        if progress is not None:
            progress(lo, label + "pruning")
        prune_step(comp, target, previous, calib, labelled)
        previous = target
        _cycle(comp, ft, dataset, teacher, ft.epochs / len(fractions), cycle=t, sparsity=target.sparsity,
               progress=_span(progress, lo, hi, label))
    _done(progress, t0)


def _scaled(p: PruneSpec, r: float) -> PruneSpec:
    """``p`` with every sparsity (global and per-layer overrides) scaled by ``r``."""
    return replace(p, sparsity=p.sparsity * r, layer_sparsity=tuple((n, s * r) for n, s in p.layer_sparsity))


def _unstructured_step(comp: Compressed, target: PruneSpec, _previous, calib, labelled) -> None:
    """Re-score the current weights; already-pruned weights score -inf so they stay pruned."""
    from .pipeline import score_layers

    layers = prunable_layers(comp.float_model, target.skip)
    if not layers:
        raise ValueError("this model has no prunable Conv2d/Linear layer left after the skip list")
    scores = score_layers(comp.float_model, layers, target, calib, labelled)
    if comp.masks:
        scores = [s.masked_fill(~comp.masks[n], float("-inf")) for s, (n, _) in zip(scores, layers, strict=True)]
    masks = masks_from_scores(layers, scores, target)
    if comp.masks:
        masks = {n: m & comp.masks[n] for n, m in masks.items()}
    comp.masks = masks
    apply_masks_(layers, masks)


def _structured_step(spec: ModelSpec | None):
    try:
        from .prune.structured import structured_prune_
    except ImportError as exc:
        raise ValueError("gradual structured pruning needs compress_core.prune.structured, which is not "
                         f"available in this build ({exc}); use the oneshot schedule or unstructured pruning") from None
    if spec is None:
        raise ValueError("structured pruning needs the model spec (input shape); pass spec=")

    def step(comp: Compressed, target: PruneSpec, previous: PruneSpec | None, calib, labelled) -> None:
        before = previous.sparsity if previous else 0.0
        frac = structured_step_fraction(before, target.sparsity)
        prev_layers = dict(previous.layer_sparsity) if previous else {}
        local = replace(target, sparsity=frac, layer_sparsity=tuple(
            (n, structured_step_fraction(prev_layers.get(n, 0.0), s)) for n, s in target.layer_sparsity))
        if not local.active:
            return
        report = structured_prune_(comp.float_model, local, spec.input_shape, calib=calib, labelled=labelled)
        comp.structure = merge_structure_reports(comp.structure or None, report, target.sparsity)
        comp.model = comp.float_model

    return step


def merge_structure_reports(total: dict | None, step: dict, cumulative_sparsity: float) -> dict:
    """Fold one step's ``structured_prune_`` report into the running one: "before" values stay those of
    the dense model, "after" values are the latest; ``steps`` lists every step."""
    row = {"cumulative_sparsity": cumulative_sparsity, "step_sparsity": step["sparsity"],
           "params_after": step["params_after"], "macs_after": step["macs_after"]}
    if total is None:
        return {**step, "sparsity": cumulative_sparsity, "steps": [row]}
    first = {r["layer"]: r for r in total["layers"]}
    layers = [{**r, "in_before": first[r["layer"]]["in_before"], "out_before": first[r["layer"]]["out_before"]}
              if r["layer"] in first else r for r in step["layers"]]
    changed = [r for r in layers if r["out_before"] != r["out_after"]]
    return {**step, "sparsity": cumulative_sparsity, "layers": layers,
            "shortcuts_rewritten": total["shortcuts_rewritten"] + step["shortcuts_rewritten"],
            "channels_before": {r["layer"]: r["out_before"] for r in changed},
            "channels_after": {r["layer"]: r["out_after"] for r in changed},
            "params_before": total["params_before"], "macs_before": total["macs_before"],
            "steps": total["steps"] + [row]}
