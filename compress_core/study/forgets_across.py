"""What several recipes of one model forget together: the images that flip under most of them (an approximate
exemplar list, in the spirit of Hooker et al.'s pruning-identified exemplars) and the per-class damage against
sparsity as a tidy DataFrame for plotting.

Both read the ``forgets`` a Result carries (``bench.forgets.Forgets.to_dict()``); results without it (other
runtimes, rows stored before it existed, unlabelled images) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from compress_core.bench.forgets import RIGHT_TO_WRONG, Forgets, flip_indices

DAMAGE_COLUMNS = ["recipe_label", "sparsity", "kind", "class", "change_pp", "significant"]
EXEMPLAR_COLUMNS = ["index", "label", "flips", "of", "share", "right_to_wrong", "wrong_to_right"]
APPROXIMATE_NOTE = (
    "approximate: an image counts when it flips (right→wrong or wrong→right) against the dense model under more "
    "than min_share of these recipes, one compressed model each: a stand-in for Hooker et al.'s pruning-identified "
    "exemplars, which compare modal labels over populations of independently trained models"
)
LOWER_BOUND_NOTE = (
    "; some results carry only their capped flipped list (no flip bits), so those counts are lower bounds"
)


@dataclass(frozen=True)
class Exemplars:
    """Images that flip under more than ``min_share`` of ``results`` recipes, most flips first (``rows``: index
    into the eval set, label where a flipped list names it, else None, flips, of, share and the two kinds). Always
    ``approximate`` (``note`` says why); ``lower_bound`` when some result had only its capped flipped list."""

    rows: list[dict[str, Any]]
    results: int
    min_share: float
    lower_bound: bool
    note: str = APPROXIMATE_NOTE
    capped_results: list[str] = field(default_factory=list)  # recipe labels counted from a capped flipped list
    approximate: bool = True

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=EXEMPLAR_COLUMNS)

    def __len__(self) -> int:
        return len(self.rows)


def _labelled(results: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Forgets]]:
    out = []
    for r in results:
        f = r.get("forgets")
        if f and f.get("labelled", True):
            out.append((r, Forgets.from_dict(f)))
    return out


def _flips_of(f: Forgets) -> tuple[list[int], list[int], bool]:
    """(right→wrong indices, wrong→right indices, complete): from the flip bits, else from the flipped list."""
    both = flip_indices(f)
    if both is not None:
        return both[0], both[1], True
    r2w = [row["index"] for row in f.flipped if row["kind"] == RIGHT_TO_WRONG]
    w2r = [row["index"] for row in f.flipped if row["kind"] != RIGHT_TO_WRONG]
    return r2w, w2r, f.flipped_total <= len(f.flipped)


def flip_exemplars(results: Sequence[Mapping[str, Any]], min_share: float = 0.5) -> Exemplars:
    """The images that flip under more than ``min_share`` of the results' recipes (``Result.to_dict()`` each, all
    of one model on one eval set; those without ``forgets`` are not counted)."""
    if not 0.0 <= min_share < 1.0:
        raise ValueError(f"min_share must be in [0, 1); got {min_share!r}")
    got = _labelled(results)
    counts: dict[int, list[int]] = {}  # index -> [right→wrong, wrong→right]
    labels: dict[int, int] = {}
    capped = []
    for r, f in got:
        r2w, w2r, complete = _flips_of(f)
        if not complete:
            capped.append(str(r.get("recipe_label", "")))
        for i in r2w:
            counts.setdefault(i, [0, 0])[0] += 1
        for i in w2r:
            counts.setdefault(i, [0, 0])[1] += 1
        labels.update((row["index"], row["label"]) for row in f.flipped)
    total = len(got)
    rows = [
        {
            "index": i,
            "label": labels.get(i),
            "flips": a + b,
            "of": total,
            "share": (a + b) / total,
            "right_to_wrong": a,
            "wrong_to_right": b,
        }
        for i, (a, b) in counts.items()
        if (a + b) / total > min_share
    ]
    rows.sort(key=lambda r: (-int(r["flips"] or 0), int(r["index"] or 0)))
    note = APPROXIMATE_NOTE + (LOWER_BOUND_NOTE if capped else "")
    return Exemplars(rows, total, min_share, lower_bound=bool(capped), note=note, capped_results=capped)


def class_damage(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per-class accuracy change of every result as a tidy DataFrame (``DAMAGE_COLUMNS``: one row per result and
    class; ``sparsity`` and ``kind`` are the recipe's pruning), ready for a damage-vs-sparsity plot."""
    rows = []
    for r, f in _labelled(results):
        prune = (r.get("recipe") or {}).get("prune") or {}
        for c in f.per_class:
            rows.append(
                {
                    "recipe_label": r.get("recipe_label", ""),
                    "sparsity": float(prune.get("sparsity", 0.0)),
                    "kind": str(prune.get("kind", "none")),
                    "class": int(c["class"]),
                    "change_pp": float(c["change_pp"]),
                    "significant": bool(c["significant"]),
                }
            )
    df = pd.DataFrame(rows, columns=DAMAGE_COLUMNS)
    return df.astype(
        {"recipe_label": str, "sparsity": "float64", "kind": str, "class": "int64", "change_pp": "float64"}
    ).astype({"significant": bool})
