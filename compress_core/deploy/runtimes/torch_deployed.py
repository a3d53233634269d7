"""The eager-PyTorch deployment, shared by the FX path (``torch_rt``) and the PT2E path (``torch_pt2e``)."""

from __future__ import annotations

import io
from collections.abc import Callable

import torch
from torch import nn

from compress_core.deploy.runtimes.base import Deployed, unsupported

EXPORT_BATCH = 2


class TorchDeployed(Deployed):
    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],  # PT2E: the compiled callable
        kernels: str,
        input_shape: tuple[int, ...],
        batch: int,
        threads: int,
        int8: bool,
        file_kind: str,
        notes: list[str] | None = None,
    ) -> None:
        super().__init__("torch", kernels, input_shape, batch, threads, int8, notes)
        self.model = model
        self.file_kind = file_kind  # "pt2" (torch.export), "pt" (TorchScript trace) or "none"
        self.memory_format = torch.contiguous_format

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(self._input(x)).float()

    def reconfigure(self, batch: int | None = None, threads: int | None = None) -> Deployed | None:
        return self._copy(batch or self.batch, threads or self.threads)

    def _runner(self, x: torch.Tensor) -> Callable[[], object]:
        model, x = self.model, self._input(x)

        def run() -> torch.Tensor:
            with torch.no_grad():
                return model(x)

        return run

    def _files(self) -> dict[str, bytes]:
        example = torch.zeros(EXPORT_BATCH, *self.input_shape)
        buf = io.BytesIO()
        try:
            if self.file_kind == "pt2":
                if not isinstance(self.model, nn.Module):
                    raise TypeError("torch.export takes an nn.Module, not a compiled callable")
                program = torch.export.export(self.model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
                torch.export.save(program, buf)
                return {".pt2": buf.getvalue()}
            if self.file_kind == "pt":
                with torch.no_grad():
                    torch.jit.save(torch.jit.trace(self.model, example), buf)
                return {".pt": buf.getvalue()}
        except Exception as exc:
            raise unsupported("torch", f"writing the {self.file_kind} file", exc) from exc
        raise ValueError(f"torch: {self.kernels} has no deployable file format here")
