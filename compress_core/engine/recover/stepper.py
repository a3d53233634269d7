"""A forward pass that pauses at chosen layers, so layer-wise reconstruction costs one forward pass.

Sequential reconstruction (each layer fitted on the inputs the already-corrected layers above it
produce, as in OBC/GPTQ's sequential mode, Frantar & Alistarh 2022, Frantar et al. 2023) needs the
input of layer *k* only after layers 1..k-1 have their new weights. Re-running the model up to each
layer costs O(layers) forward passes; instead ``Stepper`` runs ``model(batch)`` for every calibration
batch in its own worker thread and parks that thread in a hook at each watched layer. ``advance()``
resumes the batches one at a time (never two at once: deterministic, and no thread oversubscription)
until each reaches its next watched layer and returns what the hook saw there. Whatever the caller
changes in the paused layer (its weights) is used when the pass resumes. Any eager model works: no
tracing, no assumption about the order of ``named_modules``.

``where="pre"`` parks before the layer runs (its input); ``where="post"`` after (input and output).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

_GO, _ABORT = "go", "abort"
_TIMEOUT_S = 600.0  # a worker that neither pauses nor finishes in 10 minutes is stuck


class _Aborted(Exception):
    """Raised inside a parked worker to unwind its forward pass when the caller stops early."""


@dataclass
class Stop:
    """One batch parked at a layer: its name, its input and (``where="post"``) its output."""

    name: str
    x: torch.Tensor
    y: torch.Tensor | None = None


class Stepper:
    """Run ``model`` on ``batches``, parking at every layer named in ``names``. Use as a context
    manager: leaving it unwinds the parked threads and removes the hooks."""

    def __init__(
        self, model: nn.Module, batches: Sequence[torch.Tensor], names: Sequence[str], where: str = "pre"
    ) -> None:
        self.model, self.batches, self.where = model, list(batches), where
        modules = dict(model.named_modules())
        self._hooks = [self._hook(modules[n], n) for n in names]
        self._to: list[queue.Queue[str]] = [queue.Queue() for _ in self.batches]
        self._from: list[queue.Queue[tuple[str, Any]]] = [queue.Queue() for _ in self.batches]
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(len(self.batches))]
        self._local = threading.local()
        self.outputs: list[torch.Tensor | None] = [None] * len(self.batches)
        self.done = False

    def _hook(self, module: nn.Module, name: str):
        if self.where == "pre":
            return module.register_forward_pre_hook(lambda m, args: self._park(name, args[0], None))
        return module.register_forward_hook(lambda m, args, out: self._park(name, args[0], out))

    def _park(self, name: str, x: torch.Tensor, y: torch.Tensor | None) -> None:
        i = getattr(self._local, "index", None)
        if i is None:  # a call from outside the workers (e.g. a probe): not ours to park
            return
        self._from[i].put(("stop", Stop(name, x, y)))
        if self._to[i].get() == _ABORT:
            raise _Aborted

    def _work(self, i: int) -> None:
        self._local.index = i
        if self._to[i].get() == _ABORT:
            return
        try:
            with torch.no_grad():
                out = self.model(self.batches[i])
            self._from[i].put(("done", out))
        except _Aborted:
            self._from[i].put(("aborted", None))
        except BaseException as exc:  # handed to the caller's thread
            self._from[i].put(("error", exc))

    def __enter__(self) -> Stepper:
        for t in self._threads:
            t.start()
        return self

    def advance(self) -> list[Stop] | None:
        """Resume every batch until its next watched layer; None once the passes have finished."""
        if self.done:
            return None
        stops = []
        for i in range(len(self.batches)):
            self._to[i].put(_GO)
            kind, value = self._from[i].get(timeout=_TIMEOUT_S)
            if kind == "error":
                raise value
            if kind == "done":
                self.outputs[i] = value
            else:
                stops.append(value)
        if stops and len(stops) != len(self.batches):
            raise RuntimeError(
                "calibration batches took different paths through the model (data-dependent "
                "control flow); layer-wise reconstruction needs one path for all inputs"
            )
        if not stops:
            self.done = True
            return None
        return stops

    def finish(self) -> list[torch.Tensor | None]:
        """Run every batch to the end without stopping; the model outputs per batch."""
        while self.advance() is not None:
            pass
        return self.outputs

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        for i, t in enumerate(self._threads):
            if t.is_alive():
                self._to[i].put(_ABORT)
        for t in self._threads:
            t.join(timeout=_TIMEOUT_S)
