"""Runtimes as adapters: measure a compressed model on the kernels you would ship it on.

``get_runtime(key).deploy(model, input_shape, batch, threads, int8, calib)`` exports a float model to
a runtime, optionally quantizes it with that runtime's own int8 tool, loads a session with its
thread count set and returns a ``Deployed`` (``predict``, ``latency``, ``file_bytes``, ``save``,
``kernels``). Registered keys:

- ``torch``: eager PyTorch fp32 (the reference); int8 = ``compress_core.engine.int8`` (torch.ao FX), or
  torchao PT2E + ``torch.compile`` with ``TorchRuntime(int8_backend="pt2e" | "auto")``
- ``onnxruntime``: ONNX Runtime CPU EP; int8 = static QDQ per-channel (``quantize_static``)
- ``openvino``: OpenVINO CPU, fp32 forced; int8 = ``nncf.quantize``; telemetry off
- ``executorch``: ExecuTorch XNNPACK; int8 = PT2E ``XNNPACKQuantizer``; one static ``.pte`` per batch

Every runtime's package is optional: ``available()`` says why one cannot be used here. A model a
runtime cannot take raises ``RuntimeUnsupported`` with one line naming the runtime and the reason.
"""

from __future__ import annotations

# Registration order is the order of RUNTIMES (the reference first).
from compress_core.deploy.runtimes import torch_rt  # noqa: F401

# isort: split
from compress_core.deploy.runtimes import ort_rt  # noqa: F401

# isort: split
from compress_core.deploy.runtimes import openvino_rt  # noqa: F401

# isort: split
from compress_core.deploy.runtimes import executorch_rt  # noqa: F401

# isort: split
from compress_core.deploy.runtimes.base import RUNTIMES, Deployed, Runtime, RuntimeUnsupported, get_runtime, register

__all__ = ["RUNTIMES", "Deployed", "Runtime", "RuntimeUnsupported", "available_runtimes", "get_runtime", "register"]


def available_runtimes() -> dict[str, str | None]:
    """Every registered runtime key with None (usable) or the reason it is not."""
    return {key: rt.available() for key, rt in RUNTIMES.items()}
