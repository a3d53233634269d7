"""Recover accuracy after pruning: fine-tuning and knowledge distillation (training only; the gradual
pruning schedules live in ``prune.schedule`` and are driven by ``stages``).

- ``finetune_(model, ft, dataset, masks, teacher, progress)`` trains ``model`` in place on the
  dataset's training split (never test data) per the ``FinetuneSpec`` and returns its log rows.
  Unstructured keep-masks are re-applied after every optimizer step, so the zeros stay exactly where
  pruning put them; structured pruning needs nothing (removed channels are physically gone).
- Distillation (Hinton et al. 2015): ``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE``,
  with the dense teacher in eval mode under ``no_grad`` (its weights and BN statistics never change).

Training runs on CUDA when ``torch.cuda.is_available()`` and the model comes back to the CPU at the
end; a GPU is never required. Each run logs one row per epoch (``kind="epoch"``) and one summary row
(``kind="summary"``: sparsity, seconds, and the held-out accuracy before/after where the dataset has a
held-out split that is cheap to score).
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from . import measure
from .recipe import FinetuneSpec
from .records import Progress
from .train import fit

# Augmentation during fine-tuning, (train.fit's augment, augment_px); none for datasets not listed.
AUGMENT = {"mnist": ("shift", 2), "cifar10": ("crop-flip", 4)}
HELDOUT_SPLIT = {"mnist": "heldout"}  # a split disjoint from train and cheap to score (1,000 digits)
# Global gradient-norm clip. Distillation's softened targets make the loss far stiffer than cross-entropy
# near a confident model: at the default lr 0.01, LeNet-5 diverged from 98 % to 10-85 % unclipped.
MAX_GRAD_NORM = 5.0


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


def finetune_(model: nn.Module, ft: FinetuneSpec, dataset: str, masks: dict[str, torch.Tensor] | None = None,
              teacher: nn.Module | None = None, progress: Progress | None = None, *, epochs: float | None = None,
              cycle: int = 1, sparsity: float | None = None) -> list[dict]:
    """Fine-tune ``model`` in place per ``ft`` (``epochs`` overrides ``ft.epochs``: one cycle of a
    schedule), keeping the zeros of ``masks``; returns the log rows (per epoch, then a summary)."""
    if ft.distill and teacher is None:
        raise ValueError("distillation needs the dense teacher model; pass teacher= (Workbench does this)")
    epochs = ft.epochs if epochs is None else epochs
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
    masks = masks or {}
    keep = [(m.weight, masks[n].to(device, m.weight.dtype)) for n, m in model.named_modules() if n in masks]
    loss_fn = _loss_fn(ft, teacher, device) if ft.distill and teacher is not None else None
    try:
        log = _fit(model, train, ft, epochs, device, keep, loss_fn, progress, dataset)
    finally:
        model.to("cpu")
    seconds = time.perf_counter() - t0
    return [*({"kind": "epoch", "cycle": cycle, **row} for row in log), {
        "kind": "summary", "cycle": cycle, "sparsity": sparsity, "epochs": float(epochs),
        "train_set": train.name, "samples_per_epoch": samples, "distill": ft.distill, "lr": ft.lr,
        "batch_size": ft.batch_size, "device": device.type, "seconds": round(seconds, 3),
        "loss": log[-1]["loss"] if log else None, "heldout_set": held.name if held else None,
        "accuracy_before": before, "accuracy_after": _accuracy(model, held)}]


def _fit(model: nn.Module, train, ft: FinetuneSpec, epochs: float, device: torch.device, masks, loss_fn,
         progress: Progress | None, dataset: str) -> list[dict]:
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
