"""Option-A shortcuts as explicit channel index maps, so torch-pruning can prune residual streams.

torch-pruning sees ``F.pad`` as element-wise and would couple the 16-, 32- and 64-channel residual
streams of a CIFAR ResNet into one wrong group. ``replace_pad_shortcuts_`` swaps every ``PadShortcut``
for a ``ChannelScatter`` (the same function), and ``scatter_pruner`` is the torch-pruning rule that
prunes its input and output channels independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from compress_core.models.cifar_resnet import PadShortcut


class ChannelScatter(nn.Module):
    """Option-A shortcut as index maps: subsample by 2, then ``out[:, dst[k]] = x[:, src[k]]``; other
    output channels are zero. Built from a ``PadShortcut`` it computes exactly the same values.

    The channel counts are plain Python ints (``in_planes``/``out_planes``), so ``forward`` never reads
    a tensor to size its output and strict ``torch.export`` / ``torch.compile`` trace it without a
    data-dependent guard. The ``planes`` buffer mirrors them for the state_dict (artefacts store it);
    loading a state_dict sets the ints from it, and setting an int updates the buffer."""

    src: torch.Tensor  # buffers (register_buffer): declared so they type as tensors, not Tensor | Module
    dst: torch.Tensor
    planes: torch.Tensor

    def __init__(
        self, in_planes: int, out_planes: int, src: torch.Tensor | None = None, dst: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if src is None or dst is None:  # PadShortcut's mapping: input channel i -> i + extra // 2
            src = torch.arange(in_planes)
            dst = src + (out_planes - in_planes) // 2
        self.register_buffer("src", torch.as_tensor(src, dtype=torch.long).clone())
        self.register_buffer("dst", torch.as_tensor(dst, dtype=torch.long).clone())
        self.register_buffer("planes", torch.tensor([in_planes, out_planes], dtype=torch.long))
        self._in, self._out = int(in_planes), int(out_planes)

    @property
    def in_planes(self) -> int:
        return self._in

    @in_planes.setter
    def in_planes(self, value: int) -> None:
        self._in = int(value)
        self.planes[0] = self._in

    @property
    def out_planes(self) -> int:
        return self._out

    @out_planes.setter
    def out_planes(self, value: int) -> None:
        self._out = int(value)
        self.planes[1] = self._out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._in, self._out = (int(v) for v in self.planes.tolist())  # the ints follow the loaded buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        out = x.new_zeros((x.shape[0], self._out, x.shape[2], x.shape[3]))
        if self.src.shape[0] == 0:  # pruning removed every mapped channel: the shortcut carries zeros (an empty
            return out  # index_copy exports to an ONNX ScatterND that OpenVINO cannot read)
        return out.index_copy(1, self.dst, x.index_select(1, self.src))

    def extra_repr(self) -> str:
        return f"in_planes={self.in_planes}, out_planes={self.out_planes}, mapped={len(self.src)}"


def replace_pad_shortcuts_(model: nn.Module) -> int:
    """Swap every option-A ``PadShortcut`` for an equivalent ``ChannelScatter``; returns how many."""
    swaps = [(name, m) for name, m in model.named_modules() if isinstance(m, PadShortcut)]
    for name, m in swaps:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, ChannelScatter(m.in_planes, m.out_planes))
    return len(swaps)


def scatter_pruner() -> Any:
    """torch-pruning rule for ChannelScatter: input and output channels prune independently."""
    import torch_pruning as tp

    def _drop(values: torch.Tensor, idxs: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        removed = torch.tensor(sorted(idxs), dtype=torch.long)
        keep = ~torch.isin(values, removed)
        shift = torch.searchsorted(removed, values, right=True)  # removed indices below each value
        return keep, values - shift

    class ScatterPruner(tp.pruner.function.BasePruningFunc):
        TARGET_MODULES = ChannelScatter

        def prune_out_channels(self, layer: ChannelScatter, idxs: Sequence[int]) -> ChannelScatter:
            keep, new_dst = _drop(layer.dst, idxs)
            layer.src, layer.dst = layer.src[keep], new_dst[keep]
            layer.out_planes -= len(idxs)
            return layer

        def prune_in_channels(self, layer: ChannelScatter, idxs: Sequence[int]) -> ChannelScatter:
            keep, new_src = _drop(layer.src, idxs)
            layer.src, layer.dst = new_src[keep], layer.dst[keep]
            layer.in_planes -= len(idxs)
            return layer

        def get_out_channels(self, layer: ChannelScatter) -> int:
            return layer.out_planes

        def get_in_channels(self, layer: ChannelScatter) -> int:
            return layer.in_planes

    return ScatterPruner()
