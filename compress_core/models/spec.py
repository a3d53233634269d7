"""``ModelSpec``: what the registry knows of a model (data, input shape, reference accuracy, weights)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from compress_core.base.paths import ASSETS_DIR


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    dataset: str  # key in compress_core.data.sets: "mnist" or "cifar10"
    input_shape: tuple[int, ...]  # one sample, CHW
    num_classes: int
    params: int
    reference_accuracy: float | None  # fraction on the dataset's test set
    reference_source: str
    license: str
    builder: Callable[[], nn.Module] = field(repr=False, compare=False)
    weights_file: str = ""  # relative to COMPRESS_DATA_DIR / cache dir, or an assets/ file name
    weights_sha256: str = ""
    weights_url: str = ""
    bundled: bool = False  # weights ship in assets/ (no data dir needed)

    def card(self) -> dict:
        """The bundled model's JSON card (accuracy, split, seed, reproduce command), if any."""
        path = ASSETS_DIR / f"{self.id}.json"
        return json.loads(path.read_text()) if path.is_file() else {}
