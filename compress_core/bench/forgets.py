"""What the compressed model forgets: the answers that change between right and wrong while top-1 stays flat
(Hooker et al., "What do compressed deep neural networks forget?").

``forgets(dense_probs, probs, labels)`` compares the softmax predictions of the dense and the compressed model on
the same evaluation set (the ones the evaluation already made: no second pass) and returns ``Forgets``:

- ``agreement``: the fraction of images whose top-1 class is the dense model's; ``mean_kl``: the mean over images
  of KL(dense || compressed) of the softmax predictions, in nats (probabilities under ``KL_FLOOR`` are taken as
  ``KL_FLOOR`` inside the logarithm, so a class the compressed model rules out costs a finite amount).
- ``flips_right_to_wrong`` / ``flips_wrong_to_right``: images the dense model got right and the compressed one
  wrong, and the other way round, with their rates (fractions of ``n``).
- ``per_class``: one dict per class present in the labels: ``class``, ``n``, ``dense_accuracy``, ``accuracy``,
  ``change_pp`` (compressed minus dense, percentage points), ``change_vs_overall_pp`` (the class's change minus the
  overall change), ``ci_low_pp`` / ``ci_high_pp`` (``CI_METHOD``), ``significant`` (``SIGNIFICANCE_RULE``), and the
  class's ``flips_right_to_wrong`` / ``flips_wrong_to_right``.
- ``confusion_diff``: the compressed confusion matrix minus the dense one (rows: true class, columns: predicted),
  C x C, or None above ``CONFUSION_MAX_CLASSES`` classes.
- ``flipped``: the flipped images, most changed first (the largest change in the probability of the true class),
  at most ``FLIPPED_MAX`` of them; ``flipped_total`` counts them all.
- ``right_to_wrong_bits`` / ``wrong_to_right_bits``: every flipped image as one bit per image (base64 of
  ``numpy.packbits(mask, bitorder="little")``: N / 8 bytes, 1.3 kB for 10,000 images); ``flip_indices`` reads them.

Unlabelled images (``labels=None``): agreement and KL only; the flip counts and rates are None, the lists empty.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

FLIPPED_MAX = 100  # flipped images kept per result (``Forgets.flipped_total`` counts them all)
CONFUSION_MAX_CLASSES = 100  # above this many classes ``confusion_diff`` is None (a 1000-class matrix is 1M cells)
KL_FLOOR = 1e-12
RIGHT_TO_WRONG = "right→wrong"
WRONG_TO_RIGHT = "wrong→right"
CI_METHOD = (
    "Newcombe (1998) hybrid score interval for a paired difference of proportions (his method 10: Wilson intervals "
    "of both accuracies, with the continuity-corrected correlation of the paired answers), 95 %"
)
SIGNIFICANCE_RULE = (
    "a class is significant when its 95 % interval of change excludes the overall change (the whole set's accuracy "
    "change, taken as fixed): the class is hit more (change_vs_overall_pp < 0) or less than the model as a whole; "
    "with no overall change this is an interval that excludes 0"
)
_Z = 1.959964


@dataclass(frozen=True)
class Forgets:
    """What a compressed model answers differently from its dense model on one evaluation set (module docstring)."""

    n: int
    agreement: float
    mean_kl: float
    labelled: bool = True
    dense_accuracy: float | None = None
    accuracy: float | None = None
    flips_right_to_wrong: int | None = None
    flips_wrong_to_right: int | None = None
    flip_rate_right_to_wrong: float | None = None
    flip_rate_wrong_to_right: float | None = None
    per_class: list[dict[str, Any]] = field(default_factory=list)
    confusion_diff: list[list[int]] | None = None
    flipped: list[dict[str, Any]] = field(default_factory=list)
    flipped_total: int = 0
    flipped_max: int = FLIPPED_MAX
    right_to_wrong_bits: str = ""
    wrong_to_right_bits: str = ""
    ci_method: str = CI_METHOD
    significance_rule: str = SIGNIFICANCE_RULE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Forgets:
        """The record of ``to_dict`` (keys it does not know are ignored: a newer writer's extras)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def flips(self) -> int | None:
        """Both kinds of flip together."""
        if self.flips_right_to_wrong is None or self.flips_wrong_to_right is None:
            return None
        return self.flips_right_to_wrong + self.flips_wrong_to_right

    def classes_hurt(self) -> list[int]:
        """The classes significantly hurt: significant, and hit more than the model as a whole."""
        return [c["class"] for c in self.per_class if c["significant"] and c["change_vs_overall_pp"] < 0]


def forgets(
    dense_probs: torch.Tensor,
    probs: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    dense_top1: torch.Tensor | None = None,
    top1: torch.Tensor | None = None,
    flipped_max: int = FLIPPED_MAX,
) -> Forgets:
    """Compare the dense and compressed softmax predictions (``[N, C]`` each) on images with ``labels`` (``[N]``,
    or None: unlabelled). ``dense_top1`` / ``top1``: the top-1 classes the evaluation took from the logits (default:
    the argmax of the probabilities), so that the flips count exactly the answers the accuracy counted."""
    if dense_probs.shape != probs.shape or dense_probs.dim() != 2:
        shapes = f"{tuple(dense_probs.shape)} and {tuple(probs.shape)}"
        raise ValueError(f"dense_probs and probs must both be [N, C]; got {shapes}")
    n = int(probs.shape[0])
    d_top = dense_probs.argmax(1) if dense_top1 is None else dense_top1.long()
    c_top = probs.argmax(1) if top1 is None else top1.long()
    agreement = float((d_top == c_top).double().mean()) if n else float("nan")
    kl = mean_kl(dense_probs, probs)
    if labels is None:
        return Forgets(n=n, agreement=agreement, mean_kl=kl, labelled=False, flipped_max=flipped_max)
    if labels.shape != (n,):
        raise ValueError(f"labels must be [N] = [{n}]; got {tuple(labels.shape)}")
    y = labels.long()
    d_ok, c_ok = d_top == y, c_top == y
    r2w, w2r = d_ok & ~c_ok, ~d_ok & c_ok
    n_r2w, n_w2r = int(r2w.sum()), int(w2r.sum())
    dense_acc, acc = _mean(d_ok), _mean(c_ok)
    flipped = _flipped(dense_probs, probs, y, d_top, c_top, r2w, w2r)
    return Forgets(
        n=n,
        agreement=agreement,
        mean_kl=kl,
        dense_accuracy=dense_acc,
        accuracy=acc,
        flips_right_to_wrong=n_r2w,
        flips_wrong_to_right=n_w2r,
        flip_rate_right_to_wrong=n_r2w / n if n else float("nan"),
        flip_rate_wrong_to_right=n_w2r / n if n else float("nan"),
        per_class=per_class(y, d_ok, c_ok, acc - dense_acc),
        confusion_diff=confusion_diff(y, d_top, c_top, int(probs.shape[1])),
        flipped=flipped[:flipped_max],
        flipped_total=len(flipped),
        flipped_max=flipped_max,
        right_to_wrong_bits=_bits(r2w),
        wrong_to_right_bits=_bits(w2r),
    )


def _bits(mask: torch.Tensor) -> str:
    return base64.b64encode(np.packbits(mask.numpy().astype(bool), bitorder="little").tobytes()).decode("ascii")


def flip_indices(f: Forgets) -> tuple[list[int], list[int]] | None:
    """The indices of every right→wrong and every wrong→right image, from the bit fields (None where a record
    has none: unlabelled images, or written before they existed)."""
    if (
        not f.labelled
        or f.flips_right_to_wrong is None
        or (f.flips and not f.right_to_wrong_bits + f.wrong_to_right_bits)
    ):
        return None

    def read(text: str) -> list[int]:
        bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8), bitorder="little")[: f.n]
        return [int(i) for i in np.flatnonzero(bits)]

    return read(f.right_to_wrong_bits), read(f.wrong_to_right_bits)


def _mean(mask: torch.Tensor) -> float:
    return float(mask.double().mean()) if len(mask) else float("nan")


def mean_kl(dense_probs: torch.Tensor, probs: torch.Tensor) -> float:
    """Mean over images of KL(dense || compressed) in nats, computed in float64 (``KL_FLOOR`` inside the log)."""
    if not len(probs):
        return float("nan")
    p, q = dense_probs.double(), probs.double().clamp_min(KL_FLOOR)
    return float((torch.xlogy(p, p.clamp_min(KL_FLOOR)) - torch.xlogy(p, q)).sum(1).mean())


def confusion(labels: torch.Tensor, preds: torch.Tensor, classes: int) -> torch.Tensor:
    """Counts of (true class, predicted class), ``classes`` x ``classes``."""
    flat = labels.long() * classes + preds.long()
    return torch.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def confusion_diff(
    labels: torch.Tensor, dense_top1: torch.Tensor, top1: torch.Tensor, classes: int
) -> list[list[int]] | None:
    """Compressed confusion minus dense confusion, or None above ``CONFUSION_MAX_CLASSES`` classes."""
    if classes > CONFUSION_MAX_CLASSES:
        return None
    diff = confusion(labels, top1, classes) - confusion(labels, dense_top1, classes)
    return [[int(v) for v in row] for row in diff]


def paired_change_interval(both: int, r2w: int, w2r: int, neither: int, z: float = _Z) -> tuple[float, float]:
    """95 % interval of (compressed accuracy - dense accuracy) from the paired answers of ``n`` images: ``both``
    right, ``r2w`` (dense right, compressed wrong), ``w2r`` and ``neither`` (``CI_METHOD``). Fractions, not pp."""
    n = both + r2w + w2r + neither
    if n == 0:
        return (-1.0, 1.0)
    p1, p2 = (both + r2w) / n, (both + w2r) / n  # dense, compressed
    l1, u1 = _wilson(p1, n, z)
    l2, u2 = _wilson(p2, n, z)
    e, f, g, h = both + r2w, w2r + neither, both + w2r, r2w + neither
    ad_bc = both * neither - r2w * w2r
    if e * f * g * h == 0:
        phi = 0.0
    else:
        phi = (max(ad_bc - n / 2, 0.0) if ad_bc > 0 else ad_bc) / math.sqrt(e * f * g * h)
    # Newcombe's interval for p1 - p2 is [d - delta, d + eps]; the change p2 - p1 is its negative.
    delta = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    eps = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    change = p2 - p1
    return (max(-1.0, change - eps), min(1.0, change + delta))


def _wilson(p: float, n: int, z: float) -> tuple[float, float]:
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def per_class(labels: torch.Tensor, dense_ok: torch.Tensor, ok: torch.Tensor, overall_change: float) -> list[dict]:
    """One dict per class present in ``labels`` (module docstring), in class order."""
    out = []
    for c in torch.unique(labels).tolist():
        sel = labels == c
        d, k = dense_ok[sel], ok[sel]
        both, r2w = int((d & k).sum()), int((d & ~k).sum())
        w2r, neither = int((~d & k).sum()), int((~d & ~k).sum())
        n = both + r2w + w2r + neither
        dense_acc, acc = (both + r2w) / n, (both + w2r) / n
        lo, hi = paired_change_interval(both, r2w, w2r, neither)
        out.append(
            {
                "class": int(c),
                "n": n,
                "dense_accuracy": dense_acc,
                "accuracy": acc,
                "change_pp": 100 * (acc - dense_acc),
                "change_vs_overall_pp": 100 * (acc - dense_acc - overall_change),
                "ci_low_pp": 100 * lo,
                "ci_high_pp": 100 * hi,
                "significant": bool(hi < overall_change or lo > overall_change),
                "flips_right_to_wrong": r2w,
                "flips_wrong_to_right": w2r,
            }
        )
    return out


def _flipped(
    dense_probs: torch.Tensor,
    probs: torch.Tensor,
    labels: torch.Tensor,
    d_top: torch.Tensor,
    c_top: torch.Tensor,
    r2w: torch.Tensor,
    w2r: torch.Tensor,
) -> list[dict]:
    """Every flipped image, the largest change in the probability of its true class first (ties: by index)."""
    idx = torch.nonzero(r2w | w2r).flatten()
    if not len(idx):
        return []
    rows = torch.arange(len(labels))
    shift = (dense_probs[rows, labels] - probs[rows, labels]).abs().double()[idx]
    order = sorted(range(len(idx)), key=lambda i: (-float(shift[i]), int(idx[i])))
    d_conf, c_conf = dense_probs.max(1).values, probs.max(1).values
    out = []
    for i in order:
        j = int(idx[i])
        out.append(
            {
                "index": j,
                "label": int(labels[j]),
                "dense_label": int(d_top[j]),
                "label_compressed": int(c_top[j]),
                "dense_confidence": float(d_conf[j]),
                "confidence": float(c_conf[j]),
                "kind": RIGHT_TO_WRONG if bool(r2w[j]) else WRONG_TO_RIGHT,
            }
        )
    return out


def summary_keys(record: dict[str, Any] | None) -> dict[str, Any]:
    """The ``evaluate --json`` keys of a Result's ``forgets`` record: ``flips`` (the two counts, their rates, how many
    flipped images were listed of how many), ``per_class``, ``mean_kl``, ``confusion_diff`` and ``flipped`` (capped);
    every key present, None where nothing was computed (another runtime) or, unlabelled, nothing can be."""
    f = Forgets.from_dict(record) if record else None
    flips = None
    if f is not None and f.labelled:
        flips = {
            "right_to_wrong": f.flips_right_to_wrong,
            "wrong_to_right": f.flips_wrong_to_right,
            "right_to_wrong_rate": f.flip_rate_right_to_wrong,
            "wrong_to_right_rate": f.flip_rate_wrong_to_right,
            "flipped_total": f.flipped_total,
            "flipped_max": f.flipped_max,
        }
    return {
        "flips": flips,
        "per_class": f.per_class if f is not None and f.labelled else None,
        "mean_kl": f.mean_kl if f is not None else None,
        "confusion_diff": f.confusion_diff if f is not None else None,
        "flipped": f.flipped if f is not None and f.labelled else None,
    }
