"""Checkpoints of ``torch.nn.utils.prune``: ``X_orig`` x ``X_mask`` folded into ``X``.

``prune.l1_unstructured``, ``random_unstructured``, ``global_unstructured``, ``ln_structured`` (and
every other method of that module) replace a parameter ``X`` by ``X_orig`` (a parameter) and
``X_mask`` (a 0/1 buffer) until ``prune.remove`` stores ``X = X_mask.to(X_orig.dtype) * X_orig``.
``fold_prune_masks`` does exactly that to a state_dict, so the pruned weights fit the zoo
architecture like any other state_dict, and reports each folded tensor's measured sparsity. A mask
whose shape differs from its ``X_orig``, or that holds values other than 0 and 1, is refused.
"""

from __future__ import annotations

import torch

from compress_core.files.uploads.errors import UploadError

ORIG, MASK = "_orig", "_mask"


def _check_pair(base: str, orig: torch.Tensor, mask: torch.Tensor, state: dict, name: str) -> None:
    if base in state:
        raise UploadError(
            f"{name} holds both {base!r} and the torch.nn.utils.prune pair {base}{ORIG} / {base}{MASK}: "
            "it is unclear which weights count; save the state_dict of one model"
        )
    if tuple(mask.shape) != tuple(orig.shape):
        raise UploadError(
            f"{name}: the torch.nn.utils.prune mask {base}{MASK} has shape {tuple(mask.shape)} but "
            f"{base}{ORIG} has shape {tuple(orig.shape)}; a mask must match its weight element for "
            "element (the checkpoint is damaged or mixes two models)"
        )
    if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
        odd = mask[(mask != 0) & (mask != 1)].flatten()
        example = f" (e.g. {odd[0].item():g})" if odd.numel() and not mask.is_complex() else ""
        raise UploadError(
            f"{name}: the torch.nn.utils.prune mask {base}{MASK} holds values other than 0 and 1"
            f"{example}; a pruning mask keeps (1) or removes (0) each weight, so PruneScope refuses "
            "to fold it"
        )


def _orphans(state: dict[str, torch.Tensor], name: str) -> None:
    """``X_mask`` without ``X_orig`` (or the reverse) where ``X`` is absent: half a pruned tensor."""
    for key in state:
        for own, other in ((MASK, ORIG), (ORIG, MASK)):
            base = key.removesuffix(own)
            if key.endswith(own) and base + other not in state and base not in state:
                raise UploadError(
                    f"{name} holds {key} but not {base}{other} (nor {base}): a torch.nn.utils.prune "
                    "checkpoint stores both; save the complete model.state_dict()"
                )


def fold_prune_masks(state: dict[str, torch.Tensor], name: str) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """(state with every ``X_orig``/``X_mask`` pair folded into ``X``, measured sparsity of each folded
    ``X``); ``state`` unchanged and ``{}`` when it holds no pruning pairs."""
    bases = [k.removesuffix(MASK) for k in state if k.endswith(MASK) and k.removesuffix(MASK) + ORIG in state]
    if not bases:
        if any(k.endswith((MASK, ORIG)) for k in state):
            _orphans(state, name)
        return state, {}
    _orphans(state, name)
    folded: dict[str, torch.Tensor] = {}
    sparsity: dict[str, float] = {}
    for key, value in state.items():
        base = key.removesuffix(ORIG)
        if key.endswith(MASK) and key.removesuffix(MASK) in bases:
            continue
        if key.endswith(ORIG) and base in bases:
            mask = state[base + MASK]
            _check_pair(base, value, mask, state, name)
            value = mask.to(dtype=value.dtype) * value  # exactly what prune.remove stores
            sparsity[base] = float((value == 0).sum()) / max(1, value.numel())
            key = base
        folded[key] = value
    return folded, sparsity


def describe_sparsity(sparsity: dict[str, float], state: dict[str, torch.Tensor]) -> str:
    """One note: that masks were folded, the overall and the per-layer measured sparsity."""
    total = sum(state[k].numel() for k in sparsity)
    zeros = sum(round(s * state[k].numel()) for k, s in sparsity.items())
    layers = ", ".join(f"{k.removesuffix('.weight')} {s:.1%}" for k, s in sparsity.items())
    share = zeros / max(1, total)
    return (
        f"pruned with torch.nn.utils.prune: {len(sparsity)} mask(s) folded into the weights (X = X_orig × X_mask, "
        f"as prune.remove does); {zeros:,} of {total:,} weights in the pruned tensors are zero ({share:.1%}); "
        f"sparsity per layer: {layers}"
    )
