"""The prune-kind interface and its registry: one registered ``Pruner`` per ``PruneSpec.kind``.

``PRUNERS`` (a ``base.registry.Registry``) maps the kind to its instance; each class carries its
vocabulary (``key`` = the kind, ``label``, ``description``, ``needs``), which the dashboard reads.

A pruner receives the model to change in place (always a deep copy of the shared model), its own
``PruneSpec`` and one ``PruneContext`` (input shape, calibration bundle, optional cached scores), and
returns what it did as ``Pruned``. ``step_`` is one step of a gradual schedule (``prune.schedule``):
it starts from the previous step's state and must keep what was removed removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from compress_core.base.recipe import PruneSpec
from compress_core.base.records import NO_CALIBRATION, Calibration, StructureReport
from compress_core.base.registry import Registry
from compress_core.engine.prune.layers import Layers

# (layers, spec) -> (per-layer scores, argsort of all scores concatenated or None): a score cache
ScoreSource = Callable[[Layers, PruneSpec], tuple[list[torch.Tensor], torch.Tensor | None]]


@dataclass(frozen=True)
class PruneContext:
    input_shape: tuple[int, ...] | None
    calib: Calibration = NO_CALIBRATION
    scores: ScoreSource | None = None  # the Workbench's one-sort-per-criterion cache (unstructured)


@dataclass
class Pruned:
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # unstructured keep-masks
    structure: StructureReport | None = None  # structured: what was removed


class Pruner:
    key: ClassVar[str]  # the PruneSpec.kind it serves
    label: ClassVar[str]
    description: ClassVar[str]
    needs: ClassVar[str | None] = None
    note: ClassVar[str | None] = None  # what a result of this kind must say is simulated
    sensitivity_skip: ClassVar[tuple[str, ...]] = ()  # layers a one-layer-at-a-time analysis leaves out

    @property
    def kind(self) -> str:
        """The ``PruneSpec.kind`` this pruner serves (its registry key)."""
        return self.key

    def prune_(self, model: nn.Module, spec: PruneSpec, ctx: PruneContext) -> Pruned:
        raise NotImplementedError

    def step_(
        self, model: nn.Module, target: PruneSpec, previous: PruneSpec | None, state: Pruned, ctx: PruneContext
    ) -> Pruned:
        raise NotImplementedError


PRUNERS: Registry[Pruner] = Registry("prune kind")
register = PRUNERS.register


def get_pruner(kind: str) -> Pruner:
    try:
        return PRUNERS[kind]
    except KeyError:
        raise ValueError(f"no pruner for kind {kind!r}; choose one of: {', '.join(PRUNERS)}") from None
