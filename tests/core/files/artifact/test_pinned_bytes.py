"""The artefact a user downloads keeps its exact bytes across refactors: sha256 pinned for recipes whose
computation is exact on every CPU (magnitude and seeded-random masks, rounding to a grid, fp16, the dense
weights themselves), on the bundled LeNet-5. A change that moves these hashes changes the file format or
the numbers, and must say so (bump the artefact version, re-pin with the reason in the commit)."""

from __future__ import annotations

import hashlib

import pytest

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.files.artifact import artifact_bytes

# Computed at 19b2f25, before the core moved into subpackages.
PINNED = {
    "dense": (Recipe(), "1008a4dd9d4ee1ab795fcb8ec8bdc414422f82830b9b64ce804b2dd4d1973931"),
    "unstructured l1 global 90 % + 4-bit": (
        Recipe(PruneSpec("unstructured", "l1", "global", 0.9), QuantSpec(bits=4)),
        "2c25d472561c145d1ca47f0631214d0ae9e60e3ac11f428f802bd146b895a967",
    ),
    "unstructured l2 layer 50 % + 8-bit asymmetric per-tensor": (
        Recipe(
            PruneSpec("unstructured", "l2", "layer", 0.5),
            QuantSpec(bits=8, scheme="asymmetric", granularity="per_tensor"),
        ),
        "578eda3f2b2fba94736b54e52f20c9349645036e5fb3c0e0f72e2cddab8610c7",
    ),
    "structured l1 layer 50 % + fp16": (
        Recipe(PruneSpec("structured", "l1", "layer", 0.5), QuantSpec(bits=16)),
        "27ca94276a70e4c34b5cb644c35552238e826cf3c2727def151a4be6a8905a27",
    ),
    "unstructured random 70 % + 1-bit sign": (
        Recipe(PruneSpec("unstructured", "random", "global", 0.7), QuantSpec(bits=1)),
        "4e4c4c7bedb2797d2031d29167db8ed3c994c27e02e07163e5d98eb1685043a0",
    ),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_the_artefact_bytes_stay_exactly_the_same(wb, name):
    recipe, sha256 = PINNED[name]
    data = artifact_bytes(wb.compress(recipe), "lenet5-mnist")
    assert hashlib.sha256(data).hexdigest() == sha256, f"{name}: {len(data):,} bytes, not the pinned file"
