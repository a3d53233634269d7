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

from compress_core.bench.forgets import RIGHT_TO_WRONG, Forgets

DAMAGE_COLUMNS = ["recipe_label", "sparsity", "kind", "class", "change_pp", "significant"]
EXEMPLAR_COLUMNS = ["index", "label", "flips", "of", "share", "right_to_wrong", "wrong_to_right"]
APPROXIMATE_NOTE = (
    "approximate: each result keeps at most its flipped_max flipped images (the largest changes in the probability "
    "of the true class), so an image's flip count is a lower bound wherever a result's flipped_total exceeds it"
)


@dataclass(frozen=True)
class Exemplars:
    """Images that flip (right→wrong or wrong→right) under at least ``min_share`` of ``results`` recipes, most
    flips first. ``approximate`` is True when some result's flipped list was capped (``APPROXIMATE_NOTE``)."""

    rows: list[dict[str, Any]]
    results: int
    min_share: float
    approximate: bool
    note: str = APPROXIMATE_NOTE
    capped_results: list[str] = field(default_factory=list)  # recipe labels whose flipped list was capped

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


def flip_exemplars(results: Sequence[Mapping[str, Any]], min_share: float = 0.5) -> Exemplars:
    """The images that flip under more than ``min_share`` of the results' recipes (``Result.to_dict()`` each, all
    of one model on one eval set; those without ``forgets`` are not counted), from their ``flipped`` lists."""
    if not 0.0 <= min_share < 1.0:
        raise ValueError(f"min_share must be in [0, 1); got {min_share!r}")
    got = _labelled(results)
    counts: dict[int, dict[str, Any]] = {}
    capped = []
    for r, f in got:
        if f.flipped_total > len(f.flipped):
            capped.append(str(r.get("recipe_label", "")))
        for row in f.flipped:
            c = counts.setdefault(row["index"], {"index": row["index"], "label": row["label"], "r2w": 0, "w2r": 0})
            c["r2w" if row["kind"] == RIGHT_TO_WRONG else "w2r"] += 1
    total = len(got)
    rows = []
    for c in counts.values():
        flips = c["r2w"] + c["w2r"]
        if total and flips / total > min_share:
            rows.append(
                {
                    "index": c["index"],
                    "label": c["label"],
                    "flips": flips,
                    "of": total,
                    "share": flips / total,
                    "right_to_wrong": c["r2w"],
                    "wrong_to_right": c["w2r"],
                }
            )
    rows.sort(key=lambda r: (-r["flips"], r["index"]))
    return Exemplars(rows, total, min_share, approximate=bool(capped), capped_results=capped)


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
