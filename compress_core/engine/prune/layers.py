"""Which layers pruning and quantization act on: Conv2d and Linear, minus a skip list."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

PRUNABLE = (nn.Conv2d, nn.Linear)
Prunable = nn.Conv2d | nn.Linear  # the type of a PRUNABLE layer: its ``weight`` is a Tensor
Layers = Sequence[tuple[str, Prunable]]


def prunable_layers(model: nn.Module, skip: Sequence[str] = ()) -> list[tuple[str, Prunable]]:
    """Conv2d and Linear layers in module order, minus ``skip``.

    ``skip`` holds layer names; ``"first"`` means the first Conv2d (it sees raw pixels) and
    ``"last"`` the final Linear (it makes the logits), as is customary. A name that matches no
    layer raises, so a typo never silently prunes a layer the user meant to keep.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    names = {n for n, _ in layers}
    drop = set()
    for s in skip:
        if s == "first":
            convs = [n for n, m in layers if isinstance(m, nn.Conv2d)]
            drop.update(convs[:1])
        elif s == "last":
            linears = [n for n, m in layers if isinstance(m, nn.Linear)]
            drop.update(linears[-1:])
        elif s in names:
            drop.add(s)
        else:
            raise ValueError(
                f"skip names a layer {s!r} that the model does not have; layers: {', '.join(sorted(names))}"
            )
    return [(n, m) for n, m in layers if n not in drop]


def classifier(model: nn.Module) -> str:
    """The layer that makes the logits: the last Linear, else the last Conv2d."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    linears = [n for n, m in layers if isinstance(m, nn.Linear)]
    return linears[-1] if linears else layers[-1][0]
