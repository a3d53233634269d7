"""What the generated code needs to know about the model (``Target``: layer names, input shape, option-A
shortcuts), and the literals it writes (``literal``: Python values with double-quoted strings)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from torch import nn

from compress_core.models import REGISTRY


@dataclass(frozen=True)
class Target:
    """What the code needs to know about the model: layer names, input shape, option-A shortcuts."""

    model_id: str
    title: str
    input_shape: tuple[int, ...] | None
    layers: tuple[tuple[str, str], ...] | None  # (name, "Conv2d" | "Linear") in module order; None: unknown
    pad_shortcuts: bool
    zoo: bool  # a zoo model: the file's __main__ block tries the code on PruneScope's copy

    def kept(self, skip: tuple[str, ...]) -> list[str]:
        """Layer names the recipe prunes (the rule of ``prune.layers.prunable_layers``)."""
        assert self.layers is not None
        convs = [n for n, t in self.layers if t == "Conv2d"]
        linears = [n for n, t in self.layers if t == "Linear"]
        drop = {
            *(convs[:1] if "first" in skip else ()),
            *(linears[-1:] if "last" in skip else ()),
            *(s for s in skip if s not in ("first", "last")),
        }
        return [n for n, _ in self.layers if n not in drop]

    @property
    def classifier(self) -> str | None:
        if not self.layers:
            return None
        linears = [n for n, t in self.layers if t == "Linear"]
        return linears[-1] if linears else self.layers[-1][0]


def _layers_of(model: nn.Module) -> tuple[tuple[tuple[str, str], ...] | None, bool]:
    found = tuple((n, type(m).__name__) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    pad = any(type(m).__name__ in ("PadShortcut", "ChannelScatter") for m in model.modules())
    return found or None, pad


@functools.lru_cache(maxsize=16)
def _zoo_layers(model_id: str) -> tuple[tuple[tuple[str, str], ...] | None, bool]:
    return _layers_of(REGISTRY[model_id].builder())  # fresh weights: only the layer names are read


def target(model_id: str, model: nn.Module | None, input_shape: tuple[int, ...] | None) -> Target:
    spec = REGISTRY.get(model_id)
    if model is not None:
        layers, pad = _layers_of(model)
    elif spec is not None:
        layers, pad = _zoo_layers(model_id)
    else:
        layers, pad = None, False
    return Target(
        model_id,
        spec.name if spec else model_id,
        input_shape or (spec.input_shape if spec else None),
        layers,
        pad,
        spec is not None,
    )


def literal(value: object) -> str:
    """A Python literal with double-quoted strings (str, tuple/set of str, dict of str -> float)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {v!r}" for k, v in value.items()) + "}"
    if isinstance(value, set):
        return "{" + ", ".join(literal(v) for v in sorted(value)) + "}" if value else "set()"
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return "(" + ", ".join(literal(v) for v in items) + ("," if len(items) == 1 else "") + ")"


def shape_args(t: Target) -> str:
    """The arguments after the batch size of an example input: the shape, or the file's INPUT_SHAPE."""
    return ", ".join(map(str, t.input_shape)) if t.input_shape else "*INPUT_SHAPE"
