"""ONNX Runtime on its CPU execution provider (key ``onnxruntime``).

- fp32: the ``onnx_file`` export (dynamic batch), all graph optimizations on.
- int8: static QDQ quantization by ``onnxruntime.quantization.quantize_static``: weights int8
  symmetric per output channel, activations uint8 per tensor (MinMax over the calibration batches,
  training images); ``quant_pre_process`` (shape inference and graph clean-up) first where it
  succeeds. On CPUs without VNNI the 7-bit ``reduce_range`` avoids the u8s8 saturation ORT's docs
  describe. At session creation ORT fuses the QDQ pairs into int8 kernels (QLinearConv, ...).
- Sessions: ``intra_op_num_threads = threads``, one inter-op thread, sequential execution, and
  thread spinning off (like torch's ``OMP_WAIT_POLICY=PASSIVE`` here: idle threads sleep instead of
  spinning against other work on a shared machine).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from compress_core.deploy.runtimes.base import Deployed, DeployJob, Runtime, cpu_flags, missing, register, unsupported
from compress_core.deploy.runtimes.onnx_file import onnx_model

NAME = "onnxruntime"


def session(model: bytes | str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class OrtDeployed(Deployed):
    def __init__(
        self,
        sess,
        data: bytes,
        kernels: str,
        input_shape: tuple[int, ...],
        batch: int,
        threads: int,
        int8: bool | None,
        notes: list[str] | None = None,
    ) -> None:
        super().__init__(NAME, kernels, input_shape, batch, threads, int8, notes)
        self.session, self._data = sess, data
        self._input = sess.get_inputs()[0].name

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self._input: x.numpy()})[0].astype(np.float32))

    def _runner(self, x: torch.Tensor) -> Callable[[], object]:
        sess, feed = self.session, {self._input: x.numpy()}
        return lambda: sess.run(None, feed)

    def _files(self) -> dict[str, bytes]:
        return {".onnx": self._data}

    def reconfigure(self, batch: int | None = None, threads: int | None = None) -> Deployed:
        batch, threads = batch or self.batch, threads or self.threads
        if threads == self.threads:
            return self._copy(batch, threads)
        return OrtDeployed(
            session(self._data, threads),
            self._data,
            self.kernels,
            self.input_shape,
            batch,
            threads,
            self.int8,
            self.notes,
        )


class _Reader:
    """``CalibrationDataReader`` over a list of image batches."""

    def __init__(self, name: str, batches: list[torch.Tensor]) -> None:
        self.name, self._it = name, iter(batches)

    def get_next(self) -> dict | None:
        batch = next(self._it, None)
        return None if batch is None else {self.name: batch.float().contiguous().numpy()}


def quantize_qdq(fp32: bytes, calib: list[torch.Tensor]) -> tuple[bytes, list[str]]:
    """Static QDQ int8 of an ONNX model (bytes in, bytes out) and notes on what was done."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader_cls = type("Reader", (_Reader, CalibrationDataReader), {})
    reduce_range = not ({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())
    n_images = sum(len(b) for b in calib)
    notes = [
        f"ORT static QDQ int8: weights int8 per-channel, activations uint8 per-tensor (MinMax on "
        f"{n_images} training images){', 7-bit range (no VNNI)' if reduce_range else ''}"
    ]
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        src, pre, out = (os.path.join(tmp, f) for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        Path(src).write_bytes(fp32)
        try:
            quant_pre_process(src, pre, skip_symbolic_shape=False)
        except Exception:
            pre = src
            notes.append("ORT quant_pre_process failed; quantized the exported graph as is")
        quantize_static(
            pre,
            out,
            reader_cls("input", calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return Path(out).read_bytes(), notes


@register
class OnnxRuntime(Runtime):
    """ONNX Runtime, CPU execution provider."""

    key = "onnxruntime"
    name = NAME
    label = "ONNX Runtime"
    description = "ONNX Runtime's CPU execution provider on an exported ONNX file; int8 by static QDQ quantization."
    needs = "onnxruntime"
    suffix = ".onnx"

    def available(self) -> str | None:
        reason = missing("onnxruntime")
        if reason is None and importlib_onnx_missing():
            return "onnx is not installed (needed to export): pip install onnx onnxscript"
        return reason

    def _deploy(self, job: DeployJob) -> Deployed:
        model, input_shape, batch, threads, int8, calib = job
        data = onnx_model(model, input_shape, NAME)
        notes: list[str] = []
        if int8:
            try:
                data, notes = quantize_qdq(data, calib)
            except Exception as exc:
                raise unsupported(NAME, "int8 quantization (quantize_static)", exc) from exc
        try:
            sess = session(data, threads)
        except Exception as exc:
            raise unsupported(NAME, "creating the CPU session", exc) from exc
        kernels = "onnxruntime-cpu int8 (qdq per-channel)" if int8 else "onnxruntime-cpu fp32"
        return OrtDeployed(sess, data, kernels, input_shape, batch, threads, int8, notes)

    def _load(self, path: Path, input_shape: tuple[int, ...], batch: int, threads: int) -> Deployed:
        data = path.read_bytes()
        int8 = b"QuantizeLinear" in data
        kernels = "onnxruntime-cpu int8 (qdq per-channel)" if int8 else "onnxruntime-cpu fp32"
        return OrtDeployed(session(data, threads), data, kernels, input_shape, batch, threads, int8)


def importlib_onnx_missing() -> bool:
    return missing("onnx") is not None or missing("onnxscript") is not None
