"""``PruneSpec.round_to``: structured pruning keeps a multiple of it in every group (layer and global
scope), the recipe validates it, and a recipe without it keeps its old JSON (cache and store keys)."""

from __future__ import annotations

import pytest
from torch import nn

from compress_core.base.recipe import PruneSpec, Recipe

S = "structured"


def _widths(model: nn.Module) -> dict[str, int]:
    return {
        n: m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }


@pytest.mark.parametrize("scope, sparsity, round_to", [("layer", 0.3, 8), ("global", 0.5, 4), ("global", 0.6, 16)])
def test_round_to_keeps_multiples_in_every_pruned_layer(wb, scope, sparsity, round_to):
    recipe = Recipe(PruneSpec(S, "l1", scope, sparsity, round_to=round_to))
    comp = wb.compress(recipe)
    report = comp.structure
    assert report is not None and report.channels_after  # something was pruned
    dense = _widths(wb.model)
    out = _widths(comp.float_model)
    for name, kept in out.items():
        if kept != dense[name] or dense[name] % round_to == 0:
            assert kept % round_to == 0, (name, kept)
    plain = _widths(wb.compress(Recipe(PruneSpec(S, "l1", scope, sparsity))).float_model)
    assert plain != out  # the rounding changed the counts (so this test can fail)


@pytest.mark.data
def test_round_to_on_resnet20_global_scope(resnet20):
    model = resnet20.compress(Recipe(PruneSpec(S, "l1", "global", 0.5, round_to=8))).float_model
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels > 3]
    assert convs and all(c % 8 == 0 for c in convs)


def test_round_to_is_validated_and_left_out_of_the_json_when_off():
    with pytest.raises(ValueError, match="round_to must be one of 0, 4, 8, 16"):
        PruneSpec(S, sparsity=0.5, round_to=3)
    with pytest.raises(ValueError, match="round_to must be one of"):
        PruneSpec(S, sparsity=0.5, round_to=True)
    with pytest.raises(ValueError, match="needs structured pruning"):
        PruneSpec("unstructured", sparsity=0.5, round_to=8)
    plain = Recipe(PruneSpec(S, sparsity=0.5))
    assert "round_to" not in plain.to_json()
    aligned = Recipe(PruneSpec(S, sparsity=0.5, round_to=8))
    assert '"round_to":8' in aligned.to_json() and Recipe.from_json(aligned.to_json()) == aligned
    assert aligned.label().endswith("round_to=8") and "round_to" not in plain.label()
    with pytest.raises(ValueError, match="round_to must be one of"):
        Recipe.from_dict({"prune": {"kind": S, "sparsity": 0.5, "round_to": 5}})
