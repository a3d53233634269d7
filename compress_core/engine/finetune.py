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
- ``finetune_codebooks_(model, qcodes, ft, dataset, masks, teacher, progress)`` fine-tunes a model whose
  k-means layers share weights (``quantize.kmeans_tensor``; Han et al. 2016 §3, "trained
  quantization"): the same loop, but after every optimizer step each centroid moves by the MEAN of the
  updates its member weights just took, and the members are reset to it (zeros stay zero, the
  assignments never change). The sum (Han et al.'s dL/dC_k) is the exact gradient of the centroid,
  but at the weights' learning rate it makes a centroid with n members (hundreds to thousands here)
  step n times as far as its average member would, so the effective rate depends on cluster size;
  the mean keeps ``ft.lr`` meaning what it means for the weights (``reduce="sum"`` is there to compare:
  on LeNet-300-100 at 92 % and 4 bits it ended at -0.25 pp against the mean's -0.20, within noise).
  Because every member starts a step at its centroid, the mean of the members' SGD updates (momentum,
  Nesterov, weight decay and gradient clipping included: all linear) is exactly an SGD step of the
  centroid on the mean gradient. At the end the codebooks, and the biases of the k-means layers, are rounded
  to fp16 (what the artefact stores; ``quantize_weights_`` does the same for the biases).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from compress_core.base.recipe import FinetuneSpec
from compress_core.base.records import Progress
from compress_core.data import sets as data_mod
from compress_core.engine import measure
from compress_core.engine.quantize import QTensor, storable_codebook
from compress_core.engine.train import fit

# Augmentation during fine-tuning, (train.fit's augment, augment_px); none for datasets not listed.
AUGMENT = {"mnist": ("shift", 2), "cifar10": ("crop-flip", 4)}
HELDOUT_SPLIT = {"mnist": "heldout"}  # a split disjoint from train and cheap to score (1,000 digits)
# Global gradient-norm clip. Distillation's softened targets make the loss far stiffer than cross-entropy
# near a confident model: at the default lr 0.01, LeNet-5 diverged from 98 % to 10-85 % unclipped.
MAX_GRAD_NORM = 5.0


# A recipe with k-means weights and fine-tuning tunes the pruned float weights for its ``epochs`` (as any
# recipe does, so the tuned model is shared with the other bit-widths), quantizes, and then tunes the
# codebooks for this share of ``epochs`` more. Measured (one seed, MNIST 10k): taking the codebook epochs
# out of the float fine-tuning instead (24 + 6 of 30) lost 0.25-0.3 pp on LeNet-300-100 at 94 % against
# 30 + 6; on LeNet-5 at 95 % the two were within run-to-run noise (-0.37/-0.15 vs -0.34/-0.28 pp, 3/4 bits).
CODEBOOK_SHARE = 0.2


def codebook_spec(ft: FinetuneSpec, share: float = CODEBOOK_SHARE) -> FinetuneSpec:
    """The codebook fine-tuning of a recipe that fine-tunes with ``ft``: ``share * ft.epochs`` epochs,
    lr, batch, distillation, sample cap and seed unchanged (the schedule does not apply: nothing is pruned)."""
    if not 0 < share <= 1:
        raise ValueError(f"the codebook share of the epochs must be in (0, 1]; got {share!r}")
    return replace(ft, epochs=ft.epochs * share)


def training_device() -> torch.device:
    """CUDA when available, else the CPU (never required)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, alpha: float
) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels)``."""
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), reduction="batchmean", log_target=True
    )
    return alpha * t * t * soft + (1.0 - alpha) * F.cross_entropy(student, labels)


def finetune_(
    model: nn.Module,
    ft: FinetuneSpec,
    dataset: str,
    masks: dict[str, torch.Tensor] | None = None,
    teacher: nn.Module | None = None,
    progress: Progress | None = None,
    *,
    epochs: float | None = None,
    cycle: int = 1,
    sparsity: float | None = None,
) -> list[dict]:
    """Fine-tune ``model`` in place per ``ft`` (``epochs`` overrides ``ft.epochs``: one cycle of a
    schedule), keeping the zeros of ``masks``; returns the log rows (per epoch, then a summary)."""
    return _finetune(model, ft, dataset, masks, teacher, progress, epochs, cycle, sparsity, {}, "mean")


def finetune_codebooks_(
    model: nn.Module,
    qcodes: dict[str, QTensor],
    ft: FinetuneSpec,
    dataset: str,
    masks: dict[str, torch.Tensor] | None = None,
    teacher: nn.Module | None = None,
    progress: Progress | None = None,
    *,
    epochs: float | None = None,
    cycle: int = 1,
    sparsity: float | None = None,
    reduce: str = "mean",
) -> list[dict]:
    """Fine-tune ``model`` with every k-means layer of ``qcodes`` (those with a codebook) tied to its
    codebook; the other layers train as in ``finetune_`` (``masks`` kept). Updates the entries of
    ``qcodes`` in place (new codebooks, same codes) and leaves each tied weight equal to its
    ``dequantize()``. ``reduce``: "mean" or "sum" of the member updates (see the module docstring)."""
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum'; got {reduce!r}")
    modules = dict(model.named_modules())
    tied = {n: q for n, q in qcodes.items() if q.codebook is not None}
    missing = [
        n
        for n, q in tied.items()
        if n not in modules or getattr(modules[n], "weight", None) is None or modules[n].weight.shape != q.codes.shape
    ]
    if missing:
        raise ValueError(f"k-means codes do not match the model's layers: {', '.join(missing)}")
    return _finetune(model, ft, dataset, masks, teacher, progress, epochs, cycle, sparsity, tied, reduce)


def _finetune(
    model: nn.Module,
    ft: FinetuneSpec,
    dataset: str,
    masks: dict[str, torch.Tensor] | None,
    teacher: nn.Module | None,
    progress: Progress | None,
    epochs: float | None,
    cycle: int,
    sparsity: float | None,
    tied: dict[str, QTensor],
    reduce: str,
) -> list[dict]:
    if ft.distill and teacher is None:
        raise ValueError("distillation needs the dense teacher model; pass teacher= (Workbench does this)")
    epochs = ft.epochs if epochs is None else epochs
    train, samples = _train_split(dataset, ft)
    held = _heldout(dataset)
    before = _accuracy(model, held)
    device = training_device()
    t0 = time.perf_counter()
    model.to(device)
    keep = _keep_masks(model, masks or {}, tied, device)
    ties = {n: _Tie(m.weight, tied[n], device, reduce) for n, m in model.named_modules() if n in tied}
    loss_fn = _loss_fn(ft, teacher, device) if ft.distill and teacher is not None else None
    try:
        log = _fit(model, train, ft, epochs, device, keep, loss_fn, progress, dataset, list(ties.values()))
        for n, tie in ties.items():
            tied[n].codebook = tie.finish()
            _round_bias_(model.get_submodule(n))
    finally:
        model.to("cpu")
    seconds = time.perf_counter() - t0
    extra = {"codebook_layers": len(ties), "centroid_update": reduce} if tied else {}
    return [
        *({"kind": "epoch", "cycle": cycle, **row} for row in log),
        {
            "kind": "summary",
            "cycle": cycle,
            "sparsity": sparsity,
            "epochs": float(epochs),
            "train_set": train.name,
            "samples_per_epoch": samples,
            "distill": ft.distill,
            "lr": ft.lr,
            "batch_size": ft.batch_size,
            "device": device.type,
            "seconds": round(seconds, 3),
            "loss": log[-1]["loss"] if log else None,
            "heldout_set": held.name if held else None,
            "accuracy_before": before,
            "accuracy_after": _accuracy(model, held),
            **extra,
        },
    ]


def _train_split(dataset: str, ft: FinetuneSpec) -> tuple[data_mod.TensorSet, int]:
    """The training split and how many of its images an epoch sees (at least one batch, or a ValueError)."""
    train = data_mod.load(dataset, "train")
    samples = min(ft.max_samples or len(train), len(train))
    if samples < ft.batch_size:
        raise ValueError(
            f"fine-tuning would see {samples} training images per epoch, fewer than one batch of "
            f"{ft.batch_size}: raise finetune max_samples or lower batch_size"
        )
    return train, samples


def _keep_masks(
    model: nn.Module, masks: dict[str, torch.Tensor], tied: dict[str, QTensor], device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, keep-mask on ``device``) of every masked layer whose weights are not tied to a codebook."""
    weights = {n: cast(torch.Tensor, m.weight) for n, m in model.named_modules() if n in masks and n not in tied}
    return [(w, masks[n].to(device, w.dtype)) for n, w in weights.items()]


@torch.no_grad()
def _round_bias_(module: nn.Module) -> None:
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor):
        bias.copy_(bias.half().float())


class _Tie:
    """One k-means layer during fine-tuning: fp32 centroids (R, k), the fixed assignments, and the
    after-step update (centroid += mean/sum of its members' updates; members reset to it)."""

    def __init__(self, weight: torch.Tensor, q: QTensor, device: torch.device, reduce: str) -> None:
        assert q.codebook is not None, "a tied layer is a k-means layer: it has a codebook"
        k, self.shape = q.codebook.shape[-1], tuple(q.codebook.shape)
        self.weight = weight
        self.centroids = q.codebook.detach().to(device, torch.float32).reshape(-1, k).clone()
        codes = q.codes.to(device).reshape(self.centroids.shape[0], -1).long()
        self.member, self.slot = codes >= 0, codes.clamp(min=0)
        count = torch.zeros_like(self.centroids).scatter_add_(1, self.slot, self.member.float())
        self.scale = 1.0 / count.clamp(min=1) if reduce == "mean" else torch.ones_like(count)
        self.reset()

    def values(self) -> torch.Tensor:
        return torch.where(self.member, self.centroids.gather(1, self.slot), 0.0)

    @torch.no_grad()
    def reset(self) -> None:
        self.weight.copy_(self.values().reshape(self.weight.shape))

    @torch.no_grad()
    def step(self) -> None:
        delta = (self.weight.reshape(self.member.shape) - self.values()) * self.member  # what the optimizer did
        self.centroids += torch.zeros_like(self.centroids).scatter_add_(1, self.slot, delta) * self.scale
        self.reset()

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """The codebook as stored (fp16-exact, on the CPU); the weight is reset to it."""
        self.centroids = storable_codebook(self.centroids)
        self.reset()
        return self.centroids.cpu().reshape(self.shape)


def _fit(
    model: nn.Module,
    train,
    ft: FinetuneSpec,
    epochs: float,
    device: torch.device,
    masks,
    loss_fn,
    progress: Progress | None,
    dataset: str,
    ties: Sequence[_Tie] = (),
) -> list[dict]:
    def reapply_masks() -> None:
        with torch.no_grad():
            for weight, keep in masks:
                weight.mul_(keep)
            for tie in ties:
                tie.step()

    reapply_masks()  # the weights already obey the masks; this makes it certain before training
    augment, augment_px = AUGMENT.get(dataset, ("shift", 0))
    return fit(
        model,
        train.x.to(device),
        train.y.to(device),
        epochs=epochs,
        lr=ft.lr,
        batch_size=ft.batch_size,
        seed=ft.seed,
        max_samples=ft.max_samples,
        loss_fn=loss_fn,
        after_step=reapply_masks if masks or ties else None,
        progress=progress,
        augment=augment,
        augment_px=augment_px,
        max_grad_norm=MAX_GRAD_NORM,
    )


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
