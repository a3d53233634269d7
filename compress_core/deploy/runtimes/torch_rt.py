"""Eager PyTorch, the reference runtime (key ``torch``).

- fp32: the model itself, run eagerly (contiguous NCHW inputs; ``TorchRuntime(channels_last=True)``:
  channels_last weights and inputs, labelled); its deployable file is a ``torch.export`` program
  (``.pt2``, dynamic batch dimension), written on first use.
- int8: ``int8_backend="fx"`` (the registered default) is today's ``compress_core.engine.int8`` path
  (torch.ao FX static post-training quantization on the x86 engine; dynamic int8 for Linear-only
  nets), saved as a TorchScript trace (``.pt``) because ``torch.export`` cannot carry FX's packed
  int8 weights. ``"pt2e"`` and ``"auto"`` use torchao's PT2E ``X86InductorQuantizer`` with
  ``torch.compile`` (``torch_pt2e``); ``auto`` times both and keeps the faster, FX as the fallback.
  The kernels label says which ran.

Latency is timed with torch's threads set to ``threads`` for the measurement (``torch.utils.benchmark``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from compress_core.deploy.runtimes.base import Deployed, DeployJob, Runtime, first_line, register, unsupported
from compress_core.deploy.runtimes.torch_deployed import TorchDeployed
from compress_core.engine import int8 as fx_int8


@register
class TorchRuntime(Runtime):
    """Eager PyTorch on this machine's CPU kernels; fp32 is every other runtime's reference."""

    key = "torch"
    name = "torch"
    label = "PyTorch eager"
    description = "Eager PyTorch on this machine's CPU kernels: the reference every other runtime is compared with."
    suffix = ".pt2"

    def __init__(self, int8_backend: str = "fx", channels_last: bool = False) -> None:
        if int8_backend not in ("fx", "pt2e", "auto"):
            raise ValueError(f"int8_backend must be fx, pt2e or auto; got {int8_backend!r}")
        self.int8_backend, self.channels_last = int8_backend, channels_last

    def available(self) -> str | None:
        return None

    def _deploy(self, job: DeployJob) -> Deployed:
        model, input_shape, batch, threads, int8, calib = job
        if not int8:
            if self.channels_last and len(input_shape) == 3:
                deployed = TorchDeployed(
                    copy.deepcopy(model).eval().to(memory_format=torch.channels_last),
                    "torch-eager fp32 channels_last",
                    input_shape,
                    batch,
                    threads,
                    False,
                    "pt2",
                )
                deployed.memory_format = torch.channels_last
                return deployed
            return TorchDeployed(
                copy.deepcopy(model).eval(), "torch-eager fp32", input_shape, batch, threads, False, "pt2"
            )
        fx = self._fx_int8(model, input_shape, batch, threads, calib)
        if self.int8_backend == "fx":
            return fx
        from compress_core.deploy.runtimes.torch_pt2e import pt2e_int8

        try:
            pt2e = pt2e_int8(model, input_shape, batch, threads, calib)
        except Exception as exc:
            if self.int8_backend == "pt2e":
                raise unsupported("torch (pt2e)", "PT2E int8", exc) from exc
            fx.notes.append(f"PT2E int8 failed, FX used: {first_line(exc)}")
            return fx
        if self.int8_backend == "pt2e":
            return pt2e
        fx_ms, pt2e_ms = fx.latency(0.2).ms_p50, pt2e.latency(0.2).ms_p50
        winner, other = (pt2e, fx) if pt2e_ms < fx_ms else (fx, pt2e)
        winner.notes.append(
            f"int8 backend chosen by timing: {winner.kernels} {min(fx_ms, pt2e_ms):.3f} ms "
            f"vs {other.kernels} {max(fx_ms, pt2e_ms):.3f} ms (batch {batch})"
        )
        return winner

    @staticmethod
    def _fx_int8(
        model: nn.Module, input_shape: tuple[int, ...], batch: int, threads: int, calib: list[torch.Tensor]
    ) -> TorchDeployed:
        mode = fx_int8.resolve_mode(model, "auto")
        try:
            if mode == "static":
                q = fx_int8.quantize_static(model, torch.zeros(1, *input_shape), calib)
            else:
                q = fx_int8.quantize_dynamic(model)
        except Exception as exc:
            raise unsupported("torch", f"FX int8 ({mode})", exc) from exc
        label = f"torch-fx int8 ({fx_int8.backend()})" if mode == "static" else "torch-fx int8 (dynamic, Linear only)"
        return TorchDeployed(q, label, input_shape, batch, threads, True, "pt")

    def _load(self, path: Path, input_shape: tuple[int, ...], batch: int, threads: int) -> Deployed:
        if path.suffix == ".pt2":
            model = torch.export.load(str(path)).module()
            if "quantize_per" in model.code:  # a PT2E int8 program: its reference q/dq graph, run eagerly
                return TorchDeployed(
                    model, "torch int8 (pt2e reference q/dq, eager)", input_shape, batch, threads, True, "pt2"
                )
            return TorchDeployed(
                model, "torch-eager fp32 (torch.export program)", input_shape, batch, threads, False, "pt2"
            )
        if path.suffix == ".pt":  # our own TorchScript trace of an int8 model
            model = torch.jit.load(str(path)).eval()
            return TorchDeployed(model, "torch int8 (TorchScript)", input_shape, batch, threads, True, "pt")
        raise ValueError(f"torch: expected a .pt2 or .pt file written by save(); got {path.name}")
