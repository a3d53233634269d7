"""What the solver is asked for: a ``Budget`` (limits on the measured result) and a ``SearchSpace``
(which per-layer options it may combine), both validated on construction with one clear message.

A budget holds at least one limit: file size (bytes of the ``.psz`` artefact), latency (median ms on
a named runtime at a batch size and thread count), MACs, or accuracy drop (percentage points below the
dense model on the same evaluation set). ``violations`` checks a measured result (``Result.to_dict()``
keys) against it and says, per broken limit, by how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from compress_core.base.recipe import BITS, CRITERIA, MAX_SPARSITY, PRUNE_KINDS, RECOVERY_LEVELS

DEFAULT_RUNTIME = "torch"
DEFAULT_SPARSITIES = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)  # per-layer options
UNIFORM_SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)  # the uniform grid the answer is compared with
DEFAULT_BITS = (2, 3, 4, 8)
DEFAULT_KINDS = ("unstructured",)


def _positive(name: str, value: Any, integer: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{name} must be {kind}; got {value!r}")


@dataclass(frozen=True)
class Budget:
    max_size_bytes: int | None = None  # the artefact file, exactly
    max_latency_ms: float | None = None  # median latency on ``runtime`` at ``batch`` and ``threads``
    max_macs: int | None = None  # multiply-accumulates of one forward pass of one sample
    max_drop_pp: float | None = None  # accuracy drop below the dense model, in percentage points
    runtime: str = DEFAULT_RUNTIME
    batch: int = 1
    threads: int | None = None  # None: torch's current thread count

    def __post_init__(self) -> None:
        if self.max_size_bytes is not None:
            _positive("max size (bytes)", self.max_size_bytes, integer=True)
        if self.max_latency_ms is not None:
            _positive("max latency (ms)", self.max_latency_ms)
        if self.max_macs is not None:
            _positive("max MACs", self.max_macs, integer=True)
        if self.max_drop_pp is not None:
            d = self.max_drop_pp
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or not 0 <= d <= 100:
                raise ValueError(f"max accuracy drop must be between 0 and 100 percentage points; got {d!r}")
        if not self.limits():
            raise ValueError("a budget needs at least one limit: size, latency, MACs or accuracy drop")
        _positive("latency batch", self.batch, integer=True)
        if self.threads is not None:
            _positive("threads", self.threads, integer=True)
        if not isinstance(self.runtime, str) or not self.runtime:
            raise ValueError(f"runtime must be a runtime key such as 'torch'; got {self.runtime!r}")

    def limits(self) -> dict[str, float]:
        """The limits set, by the result key each one bounds (``drop_pp``: dense minus accuracy, in pp)."""
        pairs = {
            "size_bytes": self.max_size_bytes,
            "latency_ms_p50": self.max_latency_ms,
            "macs": self.max_macs,
            "drop_pp": self.max_drop_pp,
        }
        return {k: float(v) for k, v in pairs.items() if v is not None}

    @property
    def resources(self) -> dict[str, float]:
        """The limits on what the model costs (everything but the accuracy drop)."""
        return {k: v for k, v in self.limits().items() if k != "drop_pp"}

    @property
    def needs_latency(self) -> bool:
        return self.max_latency_ms is not None

    def to_dict(self) -> dict:
        return {
            "max_size_bytes": self.max_size_bytes,
            "max_latency_ms": self.max_latency_ms,
            "max_macs": self.max_macs,
            "max_drop_pp": self.max_drop_pp,
            "runtime": self.runtime,
            "batch": self.batch,
            "threads": self.threads,
        }


def measured(result: dict, key: str) -> float | None:
    """The value of ``key`` in a measured result; ``drop_pp`` from its accuracies."""
    if key == "drop_pp":
        acc, dense = result.get("accuracy"), result.get("dense_accuracy")
        return None if acc is None or dense is None else 100.0 * (float(dense) - float(acc))
    value = result.get(key)
    return None if value is None else float(value)


UNITS = {"size_bytes": " bytes", "latency_ms_p50": " ms", "macs": " MACs", "drop_pp": " pp"}
LABELS = {"size_bytes": "file size", "latency_ms_p50": "latency", "macs": "MACs", "drop_pp": "accuracy drop"}
_SLACK = 1e-9  # accuracies are multiples of 1/n: 0.983 - 0.973 = 0.01000000000000001


def violations(budget: Budget, result: dict) -> list[dict]:
    """One entry per limit the measured ``result`` breaks: {constraint, limit, measured, over, over_pct}."""
    out = []
    for key, limit in budget.limits().items():
        value = measured(result, key)
        if value is None:
            out.append({"constraint": key, "limit": limit, "measured": None, "over": None, "over_pct": None})
        elif value > limit * (1 + _SLACK) + _SLACK:
            over = value - limit
            pct = 100.0 * over / limit if limit > 0 else math.inf
            out.append({"constraint": key, "limit": limit, "measured": value, "over": over, "over_pct": pct})
    return out


def meets(budget: Budget, result: dict) -> bool:
    return not violations(budget, result)


def describe_violation(v: dict, what: str = "the best candidate", verb: str = "measures") -> str:
    """One sentence: which limit is broken and by how much."""
    key, unit = v["constraint"], UNITS[v["constraint"]]
    if v["measured"] is None:
        return f"{LABELS[key]} was not measured for {what}, so the limit cannot be checked"
    return (
        f"{LABELS[key]} limit {v['limit']:,.4g}{unit} is infeasible: {what} {verb} {v['measured']:,.4g}{unit}, "
        f"{v['over']:,.4g}{unit} ({v['over_pct']:.1f} %) over"
    )


@dataclass(frozen=True)
class SearchSpace:
    """The per-layer options: each prunable layer gets one (sparsity, bits) pair, all of one prune kind."""

    kinds: tuple[str, ...] = DEFAULT_KINDS  # unstructured and/or structured (solved separately, best kept)
    criterion: str = "l1"
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES  # besides 0 (the layer kept dense)
    uniform_sparsities: tuple[float, ...] = UNIFORM_SPARSITIES  # the uniform baseline grid, besides 0
    bits: tuple[int, ...] = DEFAULT_BITS  # besides 32 (the layer kept fp32)
    recovery: str = "auto"  # none | bn | reconstruct | auto (bn where the model has BatchNorm, else none)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", _choices("prune kinds", self.kinds, PRUNE_KINDS))
        object.__setattr__(self, "bits", _choices("bit-widths", self.bits, tuple(b for b in BITS if b < 32)))
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {self.criterion!r}")
        if self.recovery not in (*RECOVERY_LEVELS, "auto"):
            raise ValueError(f"recovery must be one of {', '.join(RECOVERY_LEVELS)} or auto; got {self.recovery!r}")
        object.__setattr__(self, "sparsities", _fractions("sparsities", self.sparsities))
        object.__setattr__(self, "uniform_sparsities", _fractions("uniform sparsities", self.uniform_sparsities))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")

    def to_dict(self) -> dict:
        return {
            "kinds": list(self.kinds),
            "criterion": self.criterion,
            "sparsities": list(self.sparsities),
            "uniform_sparsities": list(self.uniform_sparsities),
            "bits": list(self.bits),
            "recovery": self.recovery,
            "seed": self.seed,
        }


def _choices(name: str, values: Any, allowed: tuple) -> tuple:
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name} must be a non-empty list; got {values!r}")
    bad = [v for v in values if isinstance(v, bool) or v not in allowed or v == "none"]
    if bad:
        raise ValueError(f"{name} must be among {', '.join(str(a) for a in allowed if a != 'none')}; got {bad[0]!r}")
    return tuple(sorted(set(values), key=list(allowed).index))


def _fractions(name: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name} must be a non-empty list; got {values!r}")
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= MAX_SPARSITY:
            raise ValueError(f"{name} must be fractions in (0, {MAX_SPARSITY}]; got {s!r}")
    return tuple(sorted({float(s) for s in values}))
