"""The Recipe: what to do to a model, as frozen, hashable, JSON-round-tripping data.

A Recipe is the cache key, the URL state, the store key and the row label, so it holds only
plain values (str, int, float, bool, tuples) and validates itself on construction with
specific ``ValueError`` messages a user can act on.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

RECIPE_VERSION = 1

# The recipe's schema: every key below that names a criterion, prune kind or recovery level has its registered
# class, with the words a person sees, in the engine (criteria.CRITERIA, prune.PRUNERS, recover.RECOVERY).
PRUNE_KINDS = ("none", "unstructured", "structured")
CRITERIA = ("random", "l1", "l2", "taylor", "activation", "entropy")
SCOPES = ("layer", "global")
BITS = (1, 2, 3, 4, 6, 8, 16, 32)
SCHEMES = ("symmetric", "asymmetric", "kmeans")
GRANULARITIES = ("per_tensor", "per_channel")
INT8_MODES = ("auto", "static", "dynamic")
SCHEDULES = ("oneshot", "iterative", "agp")
# Post-training recovery (compress_core.engine.recover): nothing, BatchNorm re-estimation, layer-wise reconstruction.
# The recipe's own words for each level, as ``Recipe.label`` writes them: a label names results in the store and
# deployable files (so it never changes with the dashboard's wording), and base reads nothing from the engine,
# whose level classes (``recover.RECOVERY``) carry the words a person sees. The keys are the recipe's schema.
RECOVERY_WORDS = {"none": "", "bn": "BN re-estimated", "reconstruct": "reconstructed"}
RECOVERY_LEVELS = tuple(RECOVERY_WORDS)
MAX_SPARSITY = 0.99
ROUND_TO = (0, 4, 8, 16)  # structured: channel counts kept as multiples of this (0 = no rounding)

# The layers customarily left dense: the first conv sees raw pixels and the classifier
# produces the logits; both are tiny and pruning them costs far more accuracy than it saves.
DEFAULT_SKIP = ("first", "last")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def _check_fraction(name: str, value: Any, high: float = MAX_SPARSITY) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number between 0 and {high}; got {value!r}")
    if not math.isfinite(value) or not 0.0 <= value <= high:
        raise ValueError(f"{name} must be between 0 and {high} (a fraction, not a percent); got {value!r}")


@dataclass(frozen=True)
class PruneSpec:
    kind: str = "none"  # none | unstructured (single weights) | structured (whole channels)
    criterion: str = "l1"  # importance: random | l1 | l2 | taylor (|w*grad|) | activation | entropy
    scope: str = "global"  # global: one threshold over all layers; layer: same fraction per layer
    sparsity: float = 0.0  # fraction removed in prunable layers (weights, or channels if structured)
    skip: tuple[str, ...] = DEFAULT_SKIP  # layer names left dense; "first"/"last" = first/last layer
    layer_sparsity: tuple[tuple[str, float], ...] = ()  # per-layer overrides, e.g. from sensitivity
    seed: int = 0  # for the random criterion and data sampling
    residual: bool = True  # structured: also prune residual streams (faster, costs more accuracy)
    round_to: int = 0  # structured: keep a multiple of this many channels per group (0 = off; SIMD-friendly)

    def __post_init__(self) -> None:
        _check_choice("prune kind", self.kind, PRUNE_KINDS)
        if isinstance(self.round_to, bool) or self.round_to not in ROUND_TO:
            raise ValueError(
                f"round_to must be one of {', '.join(map(str, ROUND_TO))} (channels kept per group are rounded "
                f"to a multiple of it; 0 = off); got {self.round_to!r}"
            )
        object.__setattr__(self, "round_to", int(self.round_to))
        if self.round_to and self.kind != "structured":
            raise ValueError(f"round_to rounds channel counts: it needs structured pruning, not kind={self.kind!r}")
        if not isinstance(self.residual, bool):
            raise ValueError(f"residual must be true or false; got {self.residual!r}")
        _check_choice("criterion", self.criterion, CRITERIA)
        _check_choice("scope", self.scope, SCOPES)
        _check_fraction("sparsity", self.sparsity)
        object.__setattr__(self, "sparsity", float(self.sparsity))
        if isinstance(self.skip, str) or not all(isinstance(s, str) for s in self.skip):
            raise ValueError(f"skip must be a list of layer names; got {self.skip!r}")
        object.__setattr__(self, "skip", tuple(self.skip))
        pairs = []
        for item in self.layer_sparsity:
            if len(item) != 2 or not isinstance(item[0], str):
                raise ValueError(f"layer_sparsity entries must be [layer_name, fraction]; got {item!r}")
            _check_fraction(f"sparsity of layer {item[0]!r}", item[1])
            pairs.append((item[0], float(item[1])))
        object.__setattr__(self, "layer_sparsity", tuple(sorted(pairs)))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")

    @property
    def active(self) -> bool:
        return self.kind != "none" and (self.sparsity > 0 or any(s > 0 for _, s in self.layer_sparsity))


@dataclass(frozen=True)
class QuantSpec:
    bits: int = 32  # weight bit-width: 1 = sign x scale, 2..8 fixed point, 16 = fp16, 32 = fp32
    scheme: str = "symmetric"  # symmetric (zero point 0) | asymmetric (min/max "dynamic range")
    # | kmeans (weight sharing, Deep Compression: 2^bits shared values from k-means of the non-zeros)
    granularity: str = "per_channel"  # one scale (kmeans: one codebook) per output channel, or one per tensor
    int8: bool = False  # run on real int8 CPU kernels instead of simulating (needs bits == 8)
    int8_mode: str = "auto"  # auto: static for conv nets, dynamic for Linear-only nets
    layer_bits: tuple[tuple[str, int], ...] = ()  # per-layer bit-width overrides, e.g. from the budget solver

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in BITS:
            raise ValueError(f"bits must be one of {', '.join(map(str, BITS))}; got {self.bits!r}")
        object.__setattr__(self, "layer_bits", _layer_bits(self.layer_bits))
        _check_choice("quantization scheme", self.scheme, SCHEMES)
        _check_choice("quantization granularity", self.granularity, GRANULARITIES)
        _check_choice("int8 mode", self.int8_mode, INT8_MODES)
        if not isinstance(self.int8, bool):
            raise ValueError(f"int8 must be true or false; got {self.int8!r}")
        if self.int8 and self.bits != 8:
            raise ValueError(f"real int8 kernels need bits=8; got bits={self.bits}")
        if self.int8 and self.layer_bits:
            raise ValueError("real int8 kernels run every layer at 8 bits: drop layer_bits or int8")
        if self.int8 and self.scheme == "kmeans":
            raise ValueError(
                "real int8 kernels quantize uniformly; k-means weight sharing is simulated in fp32: choose one"
            )

    @property
    def active(self) -> bool:
        return self.bits != 32 or self.int8 or any(b != 32 for _, b in self.layer_bits)

    def bits_of(self, layer: str) -> int:
        """The bit-width of ``layer``: its ``layer_bits`` override, else ``bits``."""
        return dict(self.layer_bits).get(layer, self.bits)


def _layer_bits(raw: Any) -> tuple[tuple[str, int], ...]:
    """Validated, sorted (layer, bits) pairs; one entry per layer."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, (list, tuple)):
        raise ValueError(f"layer_bits must be a list of [layer, bits] pairs; got {raw!r}")
    pairs: dict[str, int] = {}
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise ValueError(f"layer_bits entries must be [layer_name, bits]; got {item!r}")
        name, bits = item
        if isinstance(bits, bool) or bits not in BITS:
            raise ValueError(f"bits of layer {name!r} must be one of {', '.join(map(str, BITS))}; got {bits!r}")
        if name in pairs:
            raise ValueError(f"layer_bits names layer {name!r} twice")
        pairs[name] = int(bits)
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class FinetuneSpec:
    epochs: float = 1.0  # passes over the training split (fractions allowed for a quick recovery)
    lr: float = 0.01  # SGD learning rate, cosine-annealed to 0
    batch_size: int = 64
    distill: bool = False  # learn from the dense teacher's soft outputs as well as the labels
    temperature: float = 4.0  # softening of teacher and student logits for distillation
    alpha: float = 0.7  # weight of the distillation loss (1 - alpha on the label loss)
    schedule: str = "oneshot"  # oneshot: prune then tune; iterative: k prune/tune cycles; agp: cubic ramp
    steps: int = 4  # pruning steps for iterative and agp schedules
    max_samples: int = 0  # cap on training images per epoch (0 = all), for CPU-friendly runs
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "lr", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"finetune {name} must be a positive number; got {value!r}")
        _check_fraction("finetune alpha", self.alpha, 1.0)
        _check_choice("finetune schedule", self.schedule, SCHEDULES)
        for name, low in (("batch_size", 1), ("steps", 1), ("max_samples", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"finetune {name} must be an integer >= {low}; got {value!r}")


@dataclass(frozen=True)
class Recipe:
    prune: PruneSpec = field(default_factory=PruneSpec)
    quant: QuantSpec = field(default_factory=QuantSpec)
    finetune: FinetuneSpec | None = None
    version: int = RECIPE_VERSION
    recovery: str = "none"  # after compression, before measurement: none | bn | reconstruct

    def __post_init__(self) -> None:
        _check_choice("recovery", self.recovery, RECOVERY_LEVELS)
        if self.version != RECIPE_VERSION:
            raise ValueError(f"recipe version {self.version!r} is not supported (this build reads {RECIPE_VERSION})")
        if not isinstance(self.prune, PruneSpec) or not isinstance(self.quant, QuantSpec):
            raise ValueError("a Recipe needs a PruneSpec and a QuantSpec")
        if self.finetune is not None and not isinstance(self.finetune, FinetuneSpec):
            raise ValueError("finetune must be a FinetuneSpec or None")

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data; ``recovery`` only when set, so recipes written before it existed keep their JSON
        (the cache, URL and store key)."""
        d = asdict(self)
        if d["recovery"] == "none":
            del d["recovery"]
        if not d["prune"]["round_to"]:  # channel rounding: absent when off, so older recipes keep their JSON
            del d["prune"]["round_to"]
        if not d["quant"]["layer_bits"]:  # likewise per-layer bits: absent when there are none
            del d["quant"]["layer_bits"]
        return d

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, so equal recipes give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        _check_object(cls, data, "a recipe", "recipe")
        prune = _build(PruneSpec, data.get("prune", {}), "prune")
        quant = _build(QuantSpec, data.get("quant", {}), "quant")
        ft = data.get("finetune")
        finetune = None if ft is None else _build(FinetuneSpec, ft, "finetune")
        return cls(
            prune=prune,
            quant=quant,
            finetune=finetune,
            version=data.get("version", RECIPE_VERSION),
            recovery=data.get("recovery", "none"),
        )

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"recipe is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        return cls.from_dict(data)

    # -- convenience --------------------------------------------------------------------------
    def with_prune(self, **changes: Any) -> Recipe:
        return replace(self, prune=replace(self.prune, **changes))

    def with_quant(self, **changes: Any) -> Recipe:
        return replace(self, quant=replace(self.quant, **changes))

    def with_recovery(self, recovery: str) -> Recipe:
        return replace(self, recovery=recovery)

    @property
    def compressed(self) -> bool:
        """Whether any stage changes the weights (recovery has something to recover)."""
        return self.prune.active or self.quant.active or self.finetune is not None

    @property
    def is_dense(self) -> bool:
        return not self.prune.active and not self.quant.active and self.finetune is None

    def label(self) -> str:
        """A short human label, e.g. 'structured l1 50% + int8'."""
        parts = []
        if self.prune.active:
            inner = " inner" if self.prune.kind == "structured" and not self.prune.residual else ""
            aligned = f" round_to={self.prune.round_to}" if self.prune.round_to else ""
            parts.append(
                f"{self.prune.kind}{inner} {self.prune.criterion} {self.prune.scope} {self.prune.sparsity:.0%}{aligned}"
            )
        if self.quant.int8:
            parts.append("int8 kernels")
        elif self.quant.bits == 16:
            parts.append("fp16")
        elif self.quant.bits < 32:
            scheme = "k-means" if self.quant.scheme == "kmeans" else self.quant.scheme[:4]
            parts.append(f"{self.quant.bits}-bit {scheme} {self.quant.granularity.replace('_', '-')}")
        if self.quant.layer_bits and not self.quant.int8:
            widths = "/".join(map(str, sorted({b for _, b in self.quant.layer_bits})))
            parts.append(f"{widths}-bit on {len(self.quant.layer_bits)} layer(s)")
        if self.finetune is not None:
            parts.append(f"finetune {self.finetune.epochs:g} ep" + (" KD" if self.finetune.distill else ""))
        if self.recovery != "none" and parts:
            parts.append(RECOVERY_WORDS[self.recovery])
        return " + ".join(parts) if parts else "dense fp32"


def _check_object(cls: type, data: Any, what: str, name: str) -> None:
    """``data`` must be a JSON object whose keys are fields of ``cls``."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object; got {type(data).__name__}")
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {name} field(s): {', '.join(sorted(unknown))}")


def _build(cls: type, data: Any, name: str) -> Any:
    _check_object(cls, data, f"recipe field {name!r}", name)
    kwargs = dict(data)
    if "skip" in kwargs and isinstance(kwargs["skip"], list):
        kwargs["skip"] = tuple(kwargs["skip"])
    if "layer_sparsity" in kwargs:
        raw = kwargs["layer_sparsity"]
        if isinstance(raw, dict):
            raw = list(raw.items())
        if not isinstance(raw, (list, tuple)):
            raise ValueError(f"layer_sparsity must be a list of [layer, fraction] pairs; got {raw!r}")
        kwargs["layer_sparsity"] = tuple(tuple(p) if isinstance(p, (list, tuple)) else (p,) for p in raw)
    if "layer_bits" in kwargs and isinstance(kwargs["layer_bits"], dict):
        kwargs["layer_bits"] = list(kwargs["layer_bits"].items())
    try:
        return cls(**kwargs)
    except TypeError as exc:  # e.g. a nested value of the wrong type
        raise ValueError(f"bad {name} spec: {exc}") from None
