"""The runtime adapter interface and its registry.

A ``Runtime`` turns a (compressed) float ``nn.Module`` into a ``Deployed`` model that runs on that
runtime's own kernels: ``deploy(model, input_shape, batch, threads, int8, calib)`` exports it,
optionally quantizes it to int8 with the runtime's own tool (calibrated on ``calib``, training
images), and loads a session with its thread count set. ``load(path, input_shape, batch, threads)``
loads a file that ``Deployed.save`` wrote.

``Deployed`` offers ``predict(x)`` (logits, any number of samples: runtimes with a static batch get
it in chunks, the last one zero-padded), ``timings``/``latency`` (one forward pass of ``batch``
samples on the runtime's session, timed by ``torch.utils.benchmark``; median and IQR),
``file_bytes`` and ``save(path)`` (the deployable file(s)), ``kernels`` (a label naming the kernels)
and ``notes`` (what else a reader of its numbers should know). ``int8`` is None where a loaded
file does not say (an ExecuTorch ``.pte``).

A model a runtime cannot take raises ``RuntimeUnsupported`` (a ``ValueError``) with one line naming
the runtime and the reason; a runtime whose package is missing says so in ``available()``.

``RUNTIMES`` (a ``base.registry.Registry``) holds one instance per adapter class decorated with
``@register``; each class carries its vocabulary (``key``, ``label``, ``description``, ``needs``: the
optional package it runs on, None for eager PyTorch), which the dashboard reads.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from compress_core.base.registry import Registry
from compress_core.engine import measure

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PREDICT_CHUNK = 256  # samples per call for runtimes with a dynamic batch dimension


class RuntimeUnsupported(ValueError):
    """A runtime cannot take this model (an op it lacks, an export or quantization failure)."""


SUMMARY = re.compile(r"<class '(?:[\w.]*\.)?(\w+)'>: (.+)")  # torch.onnx's "## Exception summary" lines


def first_line(exc: BaseException, limit: int = 220) -> str:
    """``Type: first non-empty line of the message`` without colour codes, at most ``limit`` characters
    (for torch.onnx's long reports: the first line of its exception summary)."""
    lines = [ln.strip() for ln in ANSI.sub("", str(exc)).splitlines() if ln.strip()]
    if "## Exception summary" in lines:
        for ln in lines[lines.index("## Exception summary") + 1 :]:
            match = SUMMARY.match(ln)
            if match:
                return f"{match[1]}: {match[2]}"[:limit]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no detail'}"[:limit]


def unsupported(runtime: str, step: str, exc: BaseException) -> RuntimeUnsupported:
    """The one-line error for ``runtime`` failing at ``step`` (e.g. "ONNX export") because of ``exc``."""
    return RuntimeUnsupported(f"{runtime} cannot take this model: {step} failed ({first_line(exc)})")


def missing(package: str, pip_name: str | None = None) -> str | None:
    """None when ``package`` is importable, else the one-line reason with the install command."""
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed: pip install {pip_name or package}"
    return None


def cpu_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def timed(run: Callable[[], object], threads: int, min_run_time: float) -> list[float]:
    """Seconds per call of ``run`` (after one warm-up call), by ``torch.utils.benchmark``'s
    ``blocked_autorange``; torch's own threads are set to ``threads`` while it runs."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # CUDA warning on CPU machines
    from torch.utils import benchmark

    run()
    timer = benchmark.Timer(stmt="run()", globals={"run": run}, num_threads=threads)
    return list(timer.blocked_autorange(min_run_time=min_run_time).times)


def latency_of(times: list[float], batch: int, threads: int) -> measure.Latency:
    """``measure.Latency`` (ms) from per-call seconds: median and inter-quartile range."""
    t = torch.tensor(times, dtype=torch.float64) * 1e3
    q = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    return measure.Latency(q[1], q[2] - q[0], batch, threads, len(times))


class Deployed(ABC):
    """A model loaded in a runtime's session. Subclasses implement ``_forward`` and ``_files``."""

    static_batch = False  # True: every call takes exactly ``batch`` samples

    def __init__(
        self,
        runtime: str,
        kernels: str,
        input_shape: tuple[int, ...],
        batch: int,
        threads: int,
        int8: bool | None,
        notes: list[str] | None = None,
    ) -> None:
        self.runtime, self.kernels, self.input_shape = runtime, kernels, tuple(input_shape)
        self.batch, self.threads, self.int8 = batch, threads, int8
        self.notes = list(notes or [])
        self._file_cache: dict[str, bytes] | None = None

    @abstractmethod
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of one call (``batch`` samples when ``static_batch``)."""

    @abstractmethod
    def _runner(self, x: torch.Tensor) -> Callable[[], object]:
        """A zero-argument call that runs one inference on ``x``, inputs already in the runtime's format."""

    @abstractmethod
    def _files(self) -> dict[str, bytes]:
        """The deployable file(s): suffix (".onnx", ".xml", ".bin", ...) -> bytes."""

    def _set_threads(self) -> None:  # noqa: B027 - optional hook, most runtimes set threads per session
        """Runtimes with a process-wide thread pool set it here, before each run."""

    def _copy(self, batch: int, threads: int) -> Deployed:
        """A shallow copy with another batch and thread count (same session and files)."""
        other = copy.copy(self)
        other.batch, other.threads, other.notes = batch, threads, list(self.notes)
        return other

    def reconfigure(self, batch: int | None = None, threads: int | None = None) -> Deployed | None:
        """The same deployed file(s) timed at another ``batch`` / ``threads`` without exporting or
        quantizing again; None where that needs a new export (ExecuTorch's static batch)."""
        return None

    # -- public -----------------------------------------------------------------------------
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Float logits for every sample of ``x`` (N, *input_shape)."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.runtime}: input samples have shape {tuple(x.shape[1:])}, "
                f"the deployed model takes {self.input_shape}"
            )
        self._set_threads()
        x = x.float().contiguous()
        step = self.batch if self.static_batch else PREDICT_CHUNK
        out = []
        for i in range(0, len(x), step):
            chunk = x[i : i + step]
            n = len(chunk)
            if self.static_batch and n < step:
                chunk = torch.cat([chunk, chunk.new_zeros((step - n, *self.input_shape))])
            out.append(self._forward(chunk)[:n])
        return torch.cat(out) if out else torch.empty(0)

    def runner(self) -> Callable[[], object]:
        """One forward pass of ``batch`` random samples on this session as a zero-argument call (for
        ``timing.paired``); runtimes with a process-wide thread pool set it before every call."""
        run = self._runner(torch.randn(self.batch, *self.input_shape))
        if type(self)._set_threads is Deployed._set_threads:
            return run

        def pinned() -> object:
            self._set_threads()
            return run()

        return pinned

    def timings(self, min_run_time: float = 0.3) -> list[float]:
        """Seconds per forward pass of ``batch`` random samples on this session (threads as deployed)."""
        self._set_threads()
        x = torch.randn(self.batch, *self.input_shape)
        return timed(self._runner(x), self.threads, min_run_time)

    def latency(self, min_run_time: float = 0.3) -> measure.Latency:
        """Median and IQR (ms) of one forward pass, with batch and threads recorded."""
        return latency_of(self.timings(min_run_time), self.batch, self.threads)

    def files(self) -> dict[str, bytes]:
        if self._file_cache is None:
            self._file_cache = self._files()
        return self._file_cache

    @property
    def file_bytes(self) -> int:
        """Size of the deployable file(s) that ``save`` writes."""
        return sum(len(b) for b in self.files().values())

    def save(self, path: str | Path) -> list[Path]:
        """Write the deployable file(s) at ``path`` (its suffix is replaced by the runtime's); returns them."""
        path = Path(path)
        written = []
        for suffix, data in self.files().items():
            target = path.with_suffix(suffix)
            target.write_bytes(data)
            written.append(target)
        return written

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.kernels} batch={self.batch} threads={self.threads} "
            f"file_bytes={self.file_bytes if self._file_cache is not None else '?'}>"
        )


class DeployJob(NamedTuple):
    """What ``Runtime.deploy`` hands an adapter's ``_deploy``: the model (eval mode, not to be modified), one
    sample's shape, the batch and threads of the session, whether to quantize to int8 and its calibration
    batches. It unpacks in this order: ``model, input_shape, batch, threads, int8, calib = job``."""

    model: nn.Module
    input_shape: tuple[int, ...]
    batch: int
    threads: int
    int8: bool
    calib: list[torch.Tensor]


class Runtime(ABC):
    """One runtime. Subclasses set ``key``, ``name``, ``suffix``, their vocabulary (``label``,
    ``description``, ``needs``) and implement the four methods."""

    key: str = ""
    name: str = ""  # used in messages ("onnxruntime cannot take this model: ...")
    label: str = ""  # what a person sees ("ONNX Runtime")
    description: str = ""
    needs: str | None = None  # the optional package it runs on
    suffix: str = ""  # the main deployable file's suffix
    dynamic_batch = True  # whether saved files take any batch size

    @abstractmethod
    def available(self) -> str | None:
        """None when usable here, else a one-line reason (e.g. how to install it)."""

    @abstractmethod
    def _deploy(self, job: DeployJob) -> Deployed: ...

    @abstractmethod
    def _load(self, path: Path, input_shape: tuple[int, ...], batch: int, threads: int) -> Deployed: ...

    def deploy(
        self,
        model: nn.Module,
        input_shape: tuple[int, ...],
        batch: int = 1,
        threads: int = 1,
        int8: bool = False,
        calib: list[torch.Tensor] | None = None,
    ) -> Deployed:
        """Export ``model`` (eval mode, not modified), quantize to int8 if asked (calibrated on ``calib``,
        a list of training-image batches) and load it in a session with ``threads`` threads."""
        self._check(input_shape, batch, threads)
        if int8 and not calib:
            raise ValueError(f"{self.name} int8 needs calibration images (a list of training-image batches)")
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return self._deploy(DeployJob(model, tuple(input_shape), batch, threads, int8, list(calib or [])))
        finally:
            model.train(was_training)

    def load(self, path: str | Path, input_shape: tuple[int, ...], batch: int = 1, threads: int = 1) -> Deployed:
        """Load a file written by ``Deployed.save`` (the main file, e.g. ``.onnx``, ``.xml``, ``.pte``)."""
        self._check(input_shape, batch, threads)
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{self.name}: no file at {path}")
        try:
            return self._load(path, tuple(input_shape), batch, threads)
        except (RuntimeUnsupported, ValueError):
            raise
        except Exception as exc:
            raise unsupported(self.name, f"loading {path.name}", exc) from exc

    def _check(self, input_shape: tuple[int, ...], batch: int, threads: int) -> None:
        reason = self.available()
        if reason is not None:
            raise RuntimeUnsupported(f"{self.name} is not usable here: {reason}")
        if not input_shape or not all(isinstance(d, int) and d > 0 for d in input_shape):
            raise ValueError(f"input_shape must be positive ints like (1, 28, 28); got {input_shape!r}")
        if batch < 1 or threads < 1:
            raise ValueError(f"batch and threads must be >= 1; got batch={batch}, threads={threads}")


RUNTIMES: Registry[Runtime] = Registry("runtime")
register = RUNTIMES.register  # class decorator: one instance of the class under its key


def get_runtime(key: str) -> Runtime:
    """The registered runtime ``key`` (``torch``, ``onnxruntime``, ``openvino``, ``executorch``)."""
    try:
        return RUNTIMES[key]
    except KeyError:
        raise ValueError(f"unknown runtime {key!r}; choose one of {', '.join(RUNTIMES)}") from None
