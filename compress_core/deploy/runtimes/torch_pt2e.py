"""torchao PT2E int8 for the torch runtime (``TorchRuntime(int8_backend="pt2e" | "auto")``).

``torch.ao.quantization``'s FX path is deprecated; its successor is PT2E in torchao: ``torch.export``
(dynamic batch), ``prepare_pt2e`` with the ``X86InductorQuantizer`` (int8 per-channel weights, uint8
per-tensor activations), calibration on the training-image batches, ``convert_pt2e`` (a graph of
quantize/dequantize ops around float ops), then ``torch.compile`` (inductor, with freezing, which
folds the weights and lets torchao's x86 passes fuse q/dq patterns into oneDNN int8 kernels).

- Inductor bakes the OpenMP thread count and the input shape into the code it generates (and dynamo
  guards on both), so each deployment compiles for its own ``batch`` and ``threads``
  (``static_batch``: ``predict`` feeds it chunks of ``batch``; every call runs at ``threads`` with
  freezing on, so no call recompiles into the slow unfrozen graph), and ``reconfigure`` to other
  values says "deploy again" (None).
- Compiling needs a C++ compiler and takes tens of seconds on a 2-core machine.
- The deployable file is the converted program (``.pt2``, dynamic batch); loaded back, it runs its
  reference q/dq graph eagerly (correct, not fast) unless compiled again.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

from compress_core.deploy.runtimes.base import Deployed
from compress_core.deploy.runtimes.torch_deployed import EXPORT_BATCH, TorchDeployed

KERNELS = "torch-inductor int8 (pt2e x86, torch.compile)"


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


class _Pinned:
    """Calls the compiled model with its thread count and inductor's freezing on: dynamo guards on the
    thread count, so a call under another count would recompile, and without freezing the recompiled
    graph keeps the slow reference q/dq ops."""

    def __init__(self, compiled: Callable, threads: int) -> None:
        self.compiled, self.threads = compiled, threads

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True), _threads(self.threads):
            return self.compiled(x)


class PT2EDeployed(TorchDeployed):
    static_batch = True

    def __init__(
        self,
        compiled: Callable,
        program: nn.Module,
        input_shape: tuple[int, ...],
        batch: int,
        threads: int,
        notes: list[str],
    ) -> None:
        super().__init__(compiled, KERNELS, input_shape, batch, threads, True, "pt2", notes)
        self.program = program  # the converted (reference q/dq) graph: what the file holds

    def reconfigure(self, batch: int | None = None, threads: int | None = None) -> Deployed | None:
        if (batch or self.batch, threads or self.threads) != (self.batch, self.threads):
            return None  # compiled for one shape and thread count
        return self._copy(self.batch, self.threads)

    def _files(self) -> dict[str, bytes]:
        example = torch.zeros(EXPORT_BATCH, *self.input_shape)
        program = torch.export.export(self.program, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        buf = io.BytesIO()
        torch.export.save(program, buf)
        return {".pt2": buf.getvalue()}


def quantize_pt2e(model: nn.Module, input_shape: tuple[int, ...], calib: list[torch.Tensor]) -> nn.Module:
    """The converted PT2E int8 graph of ``model`` (X86InductorQuantizer), calibrated on ``calib``."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (  # also registers the x86 passes
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    example = torch.zeros(EXPORT_BATCH, *input_shape)
    graph = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    prepared = prepare_pt2e(graph, quantizer)
    for x in calib:
        prepared(x.float())
    return convert_pt2e(prepared)


def pt2e_int8(
    model: nn.Module, input_shape: tuple[int, ...], batch: int, threads: int, calib: list[torch.Tensor]
) -> PT2EDeployed:
    """PT2E int8 of ``model``, compiled by inductor (freezing on) for ``batch`` samples and ``threads``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = quantize_pt2e(model, input_shape, calib)
        compiled = _Pinned(torch.compile(converted, dynamic=False), threads)
        with torch.no_grad():
            compiled(torch.zeros(batch, *input_shape))  # compiles now, with freezing and this thread count
    n_images = sum(len(x) for x in calib)
    notes = [
        f"PT2E int8 (X86InductorQuantizer: int8 per-channel weights, uint8 activations) calibrated on "
        f"{n_images} training images; compiled by inductor with freezing for batch {batch}, {threads} thread(s)"
    ]
    return PT2EDeployed(compiled, converted, input_shape, batch, threads, notes)
