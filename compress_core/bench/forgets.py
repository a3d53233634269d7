"""What the compressed model forgets: which test images flip between the dense and the compressed model,
which classes lose accuracy beyond noise, and how the confusion matrix moves.

``forgets(dense_probs, probs, labels)`` takes both models' softmax outputs on the same images (N × C) and
the true labels (N) and returns a frozen ``Forgets``. Per class, the change in accuracy is a difference of
two paired proportions (the same images, both models), so its 95 % interval is Newcombe's hybrid score
interval for paired data (Newcombe 1998, method 10: Wilson intervals of both accuracies, combined with
the correlation of the paired outcomes); a class is ``significant`` when that interval excludes zero, so
two or three flips among a hundred images are not called damage.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from compress_core.base import lanes
from compress_core.data.sets import TensorSet
from compress_core.engine.measure import EVAL_BATCH, wilson_interval

RIGHT_TO_WRONG, WRONG_TO_RIGHT, WRONG_TO_WRONG = "right_to_wrong", "wrong_to_right", "wrong_to_wrong"
_KIND_ORDER = {RIGHT_TO_WRONG: 0, WRONG_TO_RIGHT: 1, WRONG_TO_WRONG: 2}


@dataclass(frozen=True)
class Forgets:
    """Flips and per-class changes of a compressed model against its dense model on one labelled set."""

    n: int
    agreement: float  # fraction of images whose top-1 class is the same for both models
    flips_right_to_wrong: int  # dense right, compressed wrong
    flips_wrong_to_right: int  # dense wrong, compressed right
    flips_right_to_wrong_rate: float  # of all n images
    flips_wrong_to_right_rate: float
    mean_kl: float  # mean KL(dense ‖ compressed) over the images, in nats
    per_class: list[dict] = field(default_factory=list)  # one dict per class, in class order
    confusion_diff: list[list[int]] = field(default_factory=list)  # compressed − dense confusion, [true][predicted]
    flipped: list[dict] = field(default_factory=list)  # every image whose top-1 class changed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Forgets:
        return cls(
            n=int(d["n"]),
            agreement=float(d["agreement"]),
            flips_right_to_wrong=int(d["flips_right_to_wrong"]),
            flips_wrong_to_right=int(d["flips_wrong_to_right"]),
            flips_right_to_wrong_rate=float(d["flips_right_to_wrong_rate"]),
            flips_wrong_to_right_rate=float(d["flips_wrong_to_right_rate"]),
            mean_kl=float(d["mean_kl"]),
            per_class=[dict(c) for c in d.get("per_class", [])],
            confusion_diff=[[int(v) for v in row] for row in d.get("confusion_diff", [])],
            flipped=[dict(f) for f in d.get("flipped", [])],
        )


def paired_difference_interval(a: int, b: int, c: int, d: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % interval of p_compressed − p_dense for paired outcomes (Newcombe's method 10).

    ``a``: both right, ``b``: dense right and compressed wrong, ``c``: dense wrong and compressed right,
    ``d``: both wrong."""
    n = a + b + c + d
    if n == 0:
        return (-1.0, 1.0)
    p1, p2 = (a + c) / n, (a + b) / n  # compressed, dense
    l1, u1 = wilson_interval(a + c, n, z)
    l2, u2 = wilson_interval(a + b, n, z)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denom) if denom > 0 else 0.0
    diff = p1 - p2
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (max(-1.0, diff - delta), min(1.0, diff + eps))


def _per_class(labels: torch.Tensor, dense_ok: torch.Tensor, ok: torch.Tensor, classes: int) -> list[dict]:
    overall_pp = 100.0 * float(ok.double().mean() - dense_ok.double().mean()) if len(labels) else 0.0
    rows = []
    for k in range(classes):
        m = labels == k
        a = int((dense_ok & ok & m).sum())
        b = int((dense_ok & ~ok & m).sum())
        c = int((~dense_ok & ok & m).sum())
        d = int((~dense_ok & ~ok & m).sum())
        n = a + b + c + d
        lo, hi = paired_difference_interval(a, b, c, d)
        change = 100.0 * (c - b) / n if n else 0.0
        rows.append(
            {
                "class": k,
                "n": n,
                "dense_accuracy": (a + b) / n if n else float("nan"),
                "accuracy": (a + c) / n if n else float("nan"),
                "change_pp": change,
                "change_vs_overall_pp": change - overall_pp,
                "ci_low_pp": 100.0 * lo,
                "ci_high_pp": 100.0 * hi,
                "significant": bool(n and (lo > 0 or hi < 0)),
            }
        )
    return rows


def _confusion(labels: torch.Tensor, preds: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.bincount(labels * classes + preds, minlength=classes * classes).reshape(classes, classes)


def forgets(dense_probs: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor) -> Forgets:
    """Compare the dense model's softmax outputs with the compressed model's on the same labelled images."""
    if dense_probs.shape != probs.shape or dense_probs.dim() != 2 or len(labels) != len(probs):
        raise ValueError(
            f"forgets needs two N×C probability tensors and N labels, got {tuple(dense_probs.shape)}, "
            f"{tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    dense_probs, probs, labels = dense_probs.double(), probs.double(), labels.long()
    n, classes = probs.shape
    dense_conf, dense_pred = dense_probs.max(1)
    conf, pred = probs.max(1)
    dense_ok, ok = dense_pred == labels, pred == labels
    r2w, w2r = dense_ok & ~ok, ~dense_ok & ok
    tiny = torch.finfo(torch.float64).tiny
    kl = (dense_probs * (dense_probs.clamp_min(tiny).log() - probs.clamp_min(tiny).log())).sum(1)
    changed = torch.nonzero(dense_pred != pred).flatten().tolist()
    flipped = [
        {
            "index": i,
            "label": int(labels[i]),
            "dense_label": int(dense_pred[i]),
            "label_compressed": int(pred[i]),
            "dense_confidence": float(dense_conf[i]),
            "confidence": float(conf[i]),
            "kind": RIGHT_TO_WRONG if r2w[i] else WRONG_TO_RIGHT if w2r[i] else WRONG_TO_WRONG,
        }
        for i in changed
    ]
    flipped.sort(key=lambda f: (_KIND_ORDER[f["kind"]], -f["confidence"], f["index"]))
    diff = _confusion(labels, pred, classes) - _confusion(labels, dense_pred, classes)
    return Forgets(
        n=n,
        agreement=float((dense_pred == pred).double().mean()) if n else float("nan"),
        flips_right_to_wrong=int(r2w.sum()),
        flips_wrong_to_right=int(w2r.sum()),
        flips_right_to_wrong_rate=float(r2w.double().mean()) if n else 0.0,
        flips_wrong_to_right_rate=float(w2r.double().mean()) if n else 0.0,
        mean_kl=float(kl.mean()) if n else 0.0,
        per_class=_per_class(labels, dense_ok, ok, classes),
        confusion_diff=diff.tolist(),
        flipped=flipped,
    )


@torch.no_grad()
def softmax_outputs(
    model: nn.Module,
    data: TensorSet,
    kernels: str = "fp32",
    batch_size: int = EVAL_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """The model's softmax outputs on ``data`` (N × C, float32), run like the Workbench's predictions
    (``parts.predict``): batches in ``lanes``, an fp32 conv net on a channels_last copy (5× faster than a plain
    loop on ResNet-20 here); the given model itself is never converted. ``progress(batches done, batches)`` hears
    every batch on the calling thread (raising from it abandons the pass)."""
    fmt = torch.contiguous_format
    if kernels == "fp32" and data.x.dim() == 4 and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model, fmt = copy.deepcopy(model).to(memory_format=torch.channels_last), torch.channels_last
    model.eval()

    def probs(_lane: int, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(x.contiguous(memory_format=fmt) if x.dim() == 4 else x).float(), dim=1)

    out = lanes.run(probs, [x for x, _ in data.batches(batch_size)], progress)
    return torch.cat(out) if out else torch.empty(0, 0)
