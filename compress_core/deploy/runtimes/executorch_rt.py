"""ExecuTorch with the XNNPACK delegate (key ``executorch``).

- fp32: ``torch.export`` at a static batch, ``to_edge_transform_and_lower`` with the
  ``XnnpackPartitioner``, ``to_executorch``; ops XNNPACK does not take (e.g. the channel scatter of
  a structured ResNet's shortcut) run on ExecuTorch's portable kernels, and the notes count them.
- int8: PT2E with ExecuTorch's ``XNNPACKQuantizer`` (symmetric int8, per-channel weights):
  ``prepare_pt2e`` on a dynamic-batch export, calibration on the training-image batches,
  ``convert_pt2e``, then the same lowering.
- One static ``.pte`` per batch size: a dynamic-batch ``.pte`` exported but failed at run time
  ("Error resizing tensor at input 0"), so ``deploy(batch=b)`` writes a file for ``b`` samples and
  ``predict`` feeds it in chunks of ``b`` (the last one zero-padded).
- Threads: ExecuTorch's thread pool is process-wide; it is set to ``threads`` before every run. XNNPACK
  keeps the pool it was loaded with, so resetting the pool would leave every loaded method pointing at a
  freed one (a segfault when it next runs): each reset starts a new pool generation, and a deployment
  loaded under an older one loads its method again before it runs.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from compress_core.deploy.runtimes.base import Deployed, DeployJob, Runtime, first_line, missing, register, unsupported

NAME = "executorch"
EXAMPLE_BATCH = 2


_POOL = {"generation": 0}  # bumped on every thread-pool reset


def _set_threads(threads: int) -> int:
    """Size the process-wide pool to ``threads``; returns the pool generation now current."""
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != threads:
        portable_lib._unsafe_reset_threadpool(threads)
        _POOL["generation"] += 1
    return _POOL["generation"]


class ExecuTorchDeployed(Deployed):
    static_batch = True

    def __init__(
        self,
        data: bytes,
        kernels: str,
        input_shape: tuple[int, ...],
        batch: int,
        threads: int,
        int8: bool,
        notes: list[str] | None = None,
    ) -> None:
        from executorch.runtime import Runtime as EtRuntime

        super().__init__(NAME, kernels, input_shape, batch, threads, int8, notes)
        self._data = data
        self.program = EtRuntime.get().load_program(data)
        self.method = self.program.load_method("forward")
        self._generation = _POOL["generation"]

    def _set_threads(self) -> None:
        if _set_threads(self.threads) != self._generation:  # loaded under a pool that no longer exists
            from executorch.runtime import Runtime as EtRuntime

            self.program = EtRuntime.get().load_program(self._data)
            self.method = self.program.load_method("forward")
            self._generation = _POOL["generation"]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.execute([x.contiguous()])[0].float().clone()

    def _runner(self, x: torch.Tensor) -> Callable[[], object]:
        inputs = [x.contiguous()]
        return lambda: self.method.execute(inputs)  # self.method: it is reloaded after a pool reset

    def _files(self) -> dict[str, bytes]:
        return {".pte": self._data}

    def reconfigure(self, batch: int | None = None, threads: int | None = None) -> Deployed | None:
        if batch not in (None, self.batch):
            return None  # one static .pte per batch size: deploy again
        return self._copy(self.batch, threads or self.threads)


def _pt2e_int8(model: nn.Module, input_shape: tuple[int, ...], calib: list[torch.Tensor]) -> nn.Module:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    example = torch.zeros(EXAMPLE_BATCH, *input_shape)
    graph = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    prepared = prepare_pt2e(graph, quantizer)
    for x in calib:
        prepared(x.float())
    return convert_pt2e(prepared)


def _lower(program: torch.export.ExportedProgram) -> tuple[bytes, list[str]]:
    """The ``.pte`` bytes of ``program`` lowered to XNNPACK, and a note on the ops left outside it."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    nodes = [n for n in edge.exported_program().graph.nodes if n.op == "call_function"]
    delegates = sum("call_delegate" in str(n.target) for n in nodes)
    outside = sorted(
        {
            str(getattr(n.target, "__name__", n.target)).split(".")[0]
            for n in nodes
            if "call_delegate" not in str(n.target) and "getitem" not in str(n.target)
        }
    )
    note = f"{delegates} XNNPACK partition(s)"
    if outside:
        note += f"; ops on ExecuTorch's portable kernels: {', '.join(outside)}"
    return edge.to_executorch().buffer, [note]


def _step(step: str, fn: Callable, *args):
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return fn(*args)
    except Exception as exc:
        raise unsupported(NAME, step, exc) from exc


@register
class ExecuTorchRuntime(Runtime):
    """ExecuTorch, XNNPACK delegate, one static-batch ``.pte`` per deployment."""

    key = "executorch"
    name = NAME
    label = "ExecuTorch (XNNPACK)"
    description = "ExecuTorch with the XNNPACK delegate, one static-batch .pte file; int8 by the XNNPACK quantizer."
    needs = "executorch"
    suffix = ".pte"
    dynamic_batch = False

    def available(self) -> str | None:
        reason = missing("executorch")
        if reason is not None:
            return reason
        try:
            from executorch.extension.pybindings import portable_lib
        except Exception as exc:
            return f"executorch's runtime extension does not load: {first_line(exc)}"
        if "XnnpackBackend" not in portable_lib._get_registered_backend_names():
            return "this executorch build has no XNNPACK backend"
        return missing("torchao")

    def _deploy(self, job: DeployJob) -> Deployed:
        model, input_shape, batch, threads, int8, calib = job
        source = _step("PT2E int8 (XNNPACKQuantizer)", _pt2e_int8, model, input_shape, calib) if int8 else model
        example = (torch.zeros(batch, *input_shape),)
        program = _step("torch.export", torch.export.export, source, example)
        data, notes = _step("lowering to XNNPACK", _lower, program)
        if int8:
            notes.insert(
                0,
                f"PT2E int8 (XNNPACKQuantizer, per-channel) calibrated on {sum(len(b) for b in calib)} training images",
            )
        kernels = "executorch-xnnpack int8" if int8 else "executorch-xnnpack fp32"
        _set_threads(threads)
        deployed = _step(
            "loading the program", ExecuTorchDeployed, data, kernels, input_shape, batch, threads, int8, notes
        )
        _step("running the program", deployed._forward, example[0])
        return deployed

    def _load(self, path: Path, input_shape: tuple[int, ...], batch: int, threads: int) -> Deployed:
        data = path.read_bytes()
        deployed = ExecuTorchDeployed(data, "executorch-xnnpack", input_shape, batch, threads, False)
        sizes = tuple(deployed.method.metadata.input_tensor_meta(0).sizes())
        if sizes[1:] != tuple(input_shape):
            raise ValueError(f"executorch: {path.name} takes samples of shape {sizes[1:]}, not {tuple(input_shape)}")
        deployed.batch = sizes[0]  # a .pte has one static batch size
        if sizes[0] != batch:
            deployed.notes.append(f"{path.name} has a static batch of {sizes[0]} (asked for {batch})")
        deployed.int8 = None  # a .pte does not say whether its XNNPACK blobs hold int8 or fp32 kernels
        deployed.kernels = "executorch-xnnpack (loaded .pte)"
        return deployed
