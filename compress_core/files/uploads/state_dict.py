"""State dicts: unwrapping checkpoints, refusing non-finite weights, and fitting the weights to a
zoo architecture (the one named, or the unique one whose parameter names and shapes they match)."""

from __future__ import annotations

import functools

import torch
from torch import nn

from compress_core.files.uploads.errors import UploadError
from compress_core.models import REGISTRY, ModelSpec
from compress_core.models.torchvision_zoo import model_ids as torchvision_ids

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # nn.DataParallel / torch.compile


def unwrap_state_dict(obj: object, name: str, notes: list[str]) -> dict[str, torch.Tensor]:
    """The name -> tensor mapping inside a checkpoint (``checkpoint['state_dict']`` etc.), wrapper
    prefixes removed; anything else is refused."""
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                others = [k for k in obj if k != key]
                notes.append(f"weights taken from checkpoint[{key!r}]" + (f"; ignored {others[:5]}" if others else ""))
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise UploadError(f"{name} holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        k = bad[0]
        raise UploadError(f"{name} is not a state_dict: entry {k!r} is a {type(obj[k]).__name__}, not a tensor")
    if not obj:
        raise UploadError(f"{name} holds no tensors")
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            obj = {k.removeprefix(prefix): v for k, v in obj.items()}
            notes.append(f"removed the {prefix!r} prefix from every key")
    return dict(obj)


def check_finite(state: dict[str, torch.Tensor], name: str) -> None:
    """Refuse NaN/Inf weights, naming the first tensor that holds them."""
    for key, t in state.items():
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
                raise UploadError(
                    f"{name}: tensor {key!r} holds {nan} NaN and {inf} Inf of its {t.numel()} values; "
                    "PruneScope refuses non-finite weights (every output would be meaningless)"
                )


def zoo_spec(arch: str) -> ModelSpec:
    """The zoo ``ModelSpec`` of ``arch``, or ``UploadError`` naming the choices."""
    if arch not in REGISTRY:
        raise UploadError(f"unknown architecture {arch!r}; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[arch]


@functools.lru_cache(maxsize=32)
def _signature(arch: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    state = zoo_spec(arch).builder().state_dict()
    return tuple((k, tuple(v.shape)) for k, v in state.items() if not k.endswith("num_batches_tracked"))


def mismatch(arch: str, state: dict[str, torch.Tensor]) -> str:
    """How ``state`` differs from ``arch``'s parameter names and shapes ("" when it fits exactly)."""
    want = dict(_signature(arch))
    got = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    shapes = [f"{k} is {got[k]} in the file but {want[k]} in {arch}" for k in want if k in got and got[k] != want[k]]
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    plural = "es" if len(shapes) > 1 else ""
    parts = [
        f"{len(shapes)} shape mismatch{plural}: {'; '.join(shapes[:3])}" if shapes else "",
        f"{len(missing)} missing: {', '.join(missing[:3])}" if missing else "",
        f"{len(unexpected)} unexpected: {', '.join(unexpected[:3])}" if unexpected else "",
    ]
    return "; ".join(p for p in parts if p)


def _detect(state: dict[str, torch.Tensor], name: str) -> str:
    """The one zoo architecture ``state`` fits; the small zoo first, so torchvision models are built
    (for their signatures) only when no LeNet or CIFAR ResNet fits."""
    heavy = set(torchvision_ids())
    fits = [a for a in REGISTRY if a not in heavy and not mismatch(a, state)]
    fits = fits or [a for a in REGISTRY if a in heavy and not mismatch(a, state)]
    if len(fits) > 1:
        raise UploadError(f"{name} fits several architectures ({', '.join(fits)}): pass arch= to choose")
    if not fits:
        closest = max(REGISTRY, key=lambda a: len(set(dict(_signature(a))) & set(state)))
        raise UploadError(
            f"{name} matches no architecture PruneScope knows; closest is {closest}: "
            f"{mismatch(closest, state)}. Pass arch= one of {', '.join(REGISTRY)}"
        )
    return fits[0]


def fit(state: dict[str, torch.Tensor], arch: str | None, name: str) -> tuple[str, nn.Module, str]:
    """(architecture, model in eval mode with the weights loaded, a note saying how it was chosen):
    ``arch``, else the unique exact match."""
    if arch is None:
        arch = _detect(state, name)
        how = f"architecture {arch} detected from parameter names and shapes"
    else:
        zoo_spec(arch)
        if problem := mismatch(arch, state):
            raise UploadError(f"{name} does not fit {arch}: {problem}")
        how = f"weights loaded into {arch}"
    model = zoo_spec(arch).builder()
    model.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent (checked above)
    return arch, model.eval(), how
