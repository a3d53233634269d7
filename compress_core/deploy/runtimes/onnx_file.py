"""ONNX export with a dynamic batch dimension, shared by the ONNX Runtime and OpenVINO adapters.

``compress_core.files.onnx.export`` (the one ONNX exporter, ``torch.onnx.export(dynamo=True)``) with the
weights inside the file; the graph's input is ``input`` (batch dimension ``batch``) and its output
``logits``. Exporting a ResNet takes seconds, so the last few exports are kept, keyed by the
model's content (class, ``repr``, every state tensor's bytes) and input shape: deploying the same
model to two runtimes, or fp32 then int8, exports it once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch
from torch import nn

from compress_core.deploy.runtimes.base import unsupported
from compress_core.files import onnx

_CACHE: OrderedDict[tuple, bytes] = OrderedDict()
_CACHE_SIZE = 6
_LOCK = threading.Lock()


def content_key(model: nn.Module, input_shape: tuple[int, ...]) -> tuple:
    """Identifies what ``model`` computes: class, architecture text and the bytes of every state tensor."""
    digest = hashlib.sha1()
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().contiguous().cpu()
            digest.update(str((t.dtype, tuple(t.shape))).encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return type(model).__qualname__, repr(model), tuple(input_shape), digest.hexdigest()


def _export(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    return onnx.export(model, torch.zeros(onnx.DYNAMIC_EXAMPLE_BATCH, *input_shape), dynamic_batch=True)


def onnx_model(model: nn.Module, input_shape: tuple[int, ...], runtime: str) -> bytes:
    """The ONNX file of ``model`` (eval mode) with a dynamic batch; ``RuntimeUnsupported`` naming
    ``runtime`` when the exporter cannot convert it."""
    key = content_key(model, input_shape)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    try:
        data = _export(model, input_shape)
    except Exception as exc:
        raise unsupported(runtime, "ONNX export", exc) from exc
    with _LOCK:
        _CACHE[key] = data
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return data
