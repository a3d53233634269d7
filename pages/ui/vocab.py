"""The dashboard's words for the core's registered choices, read from their registries.

Every criterion, prune kind, recovery level and runtime is one class in the core carrying its ``label``,
``description`` and ``needs`` (``compress_core.base.registry``); the options' text and help here come
from those entries, so a new entry shows up with its own words. What is left here is what only the
dashboard says: the measured timings on this project's machine and the page's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from compress_core.base.recipe import PRUNE_KINDS
from compress_core.engine.prune import PRUNERS
from compress_core.engine.prune.criteria import CRITERIA
from compress_core.engine.recover import BN_SAMPLES, RECOVERY

NEEDS = {"images": "training images", "labels": "labelled training batches"}  # criteria's and levels' ``needs``

KIND_LABELS = {"none": "None", **PRUNERS.labels()}
KINDS = tuple(k for k in PRUNE_KINDS if k in PRUNERS)  # the pruning-kind options, in the recipe's order
CRITERION_LABELS = CRITERIA.labels()
RECOVERY_LABELS = RECOVERY.labels()
SCOPE_LABELS = {"global": "Global", "layer": "Per layer"}

# Measured on ResNet-20 and LeNet-5, quick evaluation (1,000 images): benchmarks/RESULTS.md section 12.
STRUCTURED_DEFAULTS_WHY = (
    "Structured defaults: **per-layer scope, inner channels only** (residual streams kept). Measured at 30 % "
    "with BatchNorm recovery on ResNet-20: 83.3 % top-1 this way, 80.2 % with global scope, 56.4 % when the "
    "residual streams are pruned too; on LeNet-5 at 50 % with reconstruction, 97.3 % per layer vs 96.8 % global. "
    "Global scope never takes more than 80 % of a layer's channels. Change them under Scope and Details."
)
RECOVERY_INTRO = (
    f"What a deployment pipeline does before it judges a compressed model, on {BN_SAMPLES:,} training images "
    "(never test images), seeded."
)
# Measured on this project's 2-core machine (benchmarks/RESULTS.md section 12).
RECOVERY_MEASURED = (
    "Here BatchNorm re-estimation takes about 1-1.5 s on the CIFAR ResNets, reconstruction 3-5 s on ResNet-20 "
    "and under 1 s on the LeNets. The default is the strongest level that keeps a slider move near 1.5 s: "
    "BatchNorm for the ResNets, reconstruction for the LeNets (they have no BatchNorm). The accuracy card shows "
    "the one-shot number beside the recovered one (measured right after the cards)."
)
NO_BATCHNORM = "This model has no BatchNorm, so BatchNorm re-estimation is not offered."


def described(registry: Mapping[str, Any], keys: Iterable[str] | None = None) -> str:
    """One help paragraph per entry of ``keys`` (default: all): its label, its description and what it needs."""
    lines = []
    for key in registry if keys is None else keys:
        entry = registry[key]
        needs = f" Needs {NEEDS[entry.needs]}." if entry.needs in NEEDS else ""
        lines.append(f"**{entry.label}**: {entry.description}{needs}")
    return "\n\n".join(lines)


def recovery_help(levels: tuple[str, ...]) -> str:
    """Help for a recovery choice among ``levels``: what each offered level does, then the measured costs."""
    parts = [RECOVERY_INTRO, described(RECOVERY, levels), RECOVERY_MEASURED]
    if "bn" not in levels:
        parts.append(NO_BATCHNORM)
    return "\n\n".join(p for p in parts if p)


def kind_help() -> str:
    return described(PRUNERS, KINDS)


def criterion_help(keys: Iterable[str]) -> str:
    return described(CRITERIA, keys)


def bits_label(bits: int) -> str:
    return {32: "32 · fp32", 16: "16 · fp16", 1: "1 · sign"}.get(bits, f"{bits}-bit")
