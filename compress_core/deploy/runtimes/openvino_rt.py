"""OpenVINO on its CPU plugin (key ``openvino``).

- fp32: the ``onnx_file`` export read by ``ov.Core().read_model``. OpenVINO picks bf16 on CPUs that
  have it (this one: AMX or AVX512-BF16) and saves fp16 weights by default, so fp32 is forced:
  ``INFERENCE_PRECISION_HINT=f32`` at compile time and ``compress_to_fp16=False`` when saving.
  ``OpenVINORuntime(precision="bf16")`` or ``"f16"`` gives those, labelled as such.
- int8: ``nncf.quantize`` (post-training, default preset: symmetric activations, per-channel
  weights, fast bias correction) with an ``nncf.Dataset`` over the calibration batches (training
  images); ops it leaves in float still run at the forced precision.
- Sessions: the model is reshaped to a static ``batch`` and compiled with
  ``INFERENCE_NUM_THREADS=threads``, one stream, the latency hint and CPU pinning off (a shared
  machine). The saved ``.xml`` + ``.bin`` keep the dynamic batch dimension.
- Telemetry off: OpenVINO and NNCF send usage data through ``openvino_telemetry`` unless its
  consent file (``~/intel/openvino_telemetry``) says no; a plain ``import openvino`` already writes a
  client id to ``~/intel``. ``telemetry_off()`` runs when this module is imported (so importing
  ``compress_core.deploy.runtimes`` before openvino or nncf is enough): ``NNCF_CI=1`` (NNCF then uses its
  no-op telemetry stub) and, for this process only, ``openvino_telemetry``'s consent check answers
  "declined" (nothing is sent, no consent or client-id file is written). We never call
  ``ov.convert_model`` (OVC's telemetry path) anyway: the model is read from ONNX.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from compress_core.deploy.runtimes.base import Deployed, DeployJob, Runtime, missing, register, unsupported
from compress_core.deploy.runtimes.onnx_file import onnx_model

NAME = "openvino"
PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def telemetry_off() -> None:
    """Switch OpenVINO's and NNCF's telemetry off for this process (see the module docstring)."""
    os.environ.setdefault("NNCF_CI", "1")
    try:
        from openvino_telemetry.utils import opt_in_checker
    except ImportError:  # no telemetry package: nothing can be sent
        return
    declined = opt_in_checker.ConsentCheckResult.DECLINED
    opt_in_checker.OptInChecker.check = lambda self, *args, **kwargs: declined


telemetry_off()  # at import: before anything else in this process imports openvino or nncf


@functools.cache
def core():  # openvino.Core, one per process
    telemetry_off()
    import openvino as ov

    return ov.Core()


class OpenVINODeployed(Deployed):
    static_batch = True

    def __init__(
        self,
        model,
        precision: str,
        kernels: str,
        input_shape: tuple[int, ...],
        batch: int,
        threads: int,
        int8: bool | None,
        notes: list[str] | None = None,
    ) -> None:
        import openvino as ov

        super().__init__(NAME, kernels, input_shape, batch, threads, int8, notes)
        self.model = model  # ov.Model with the dynamic batch dimension (what save writes)
        self.precision = precision
        static = model.clone()
        static.reshape([batch, *input_shape])
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False,
        }
        self.compiled = core().compile_model(static, "CPU", config)
        self.request = self.compiled.create_infer_request()
        got = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        if got != getattr(ov.Type, precision):
            raise RuntimeError(f"asked for {precision} inference precision, the CPU plugin compiled {got}")

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        self.request.infer({0: x.numpy()})
        return torch.from_numpy(np.array(self.request.get_output_tensor(0).data, dtype=np.float32))

    def _runner(self, x: torch.Tensor) -> Callable[[], object]:
        import openvino as ov

        req = self.compiled.create_infer_request()
        req.set_input_tensor(ov.Tensor(x.numpy()))
        return req.infer

    def reconfigure(self, batch: int | None = None, threads: int | None = None) -> Deployed:
        return OpenVINODeployed(
            self.model,
            self.precision,
            self.kernels,
            self.input_shape,
            batch or self.batch,
            threads or self.threads,
            self.int8,
            self.notes,
        )

    def _files(self) -> dict[str, bytes]:
        import openvino as ov

        with tempfile.TemporaryDirectory() as tmp:
            xml = Path(tmp) / "model.xml"
            ov.save_model(self.model, str(xml), compress_to_fp16=False)
            return {".xml": xml.read_bytes(), ".bin": xml.with_suffix(".bin").read_bytes()}


def nncf_int8(model, calib: list[torch.Tensor]):
    """NNCF post-training int8 of an OpenVINO model, calibrated on every batch of ``calib``."""
    telemetry_off()
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # CUDA warning on CPU machines
    import nncf

    nncf.set_log_level(logging.ERROR)
    dataset = nncf.Dataset(calib, lambda batch: batch.float().contiguous().numpy())
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bars (rich) print to stdout
        return nncf.quantize(model, dataset, subset_size=len(calib))


@register
class OpenVINORuntime(Runtime):
    """OpenVINO CPU plugin; fp32 forced unless built with another ``precision`` (then labelled)."""

    key = "openvino"
    name = NAME
    label = "OpenVINO"
    description = "OpenVINO's CPU plugin on the ONNX export, fp32 forced; int8 by NNCF post-training quantization."
    needs = "openvino"
    suffix = ".xml"

    def __init__(self, precision: str = "f32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        self.precision = precision

    def available(self) -> str | None:
        return missing("openvino") or missing("onnx") or missing("onnxscript")

    def _kernels(self, int8: bool) -> str:
        float_label = PRECISIONS[self.precision]
        if not int8:
            return f"openvino-cpu {float_label}"
        return "openvino-cpu int8 (nncf)" + ("" if self.precision == "f32" else f", float ops {float_label}")

    def _deploy(self, job: DeployJob) -> Deployed:
        model, input_shape, batch, threads, int8, calib = job
        data = onnx_model(model, input_shape, NAME)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(data)
            try:
                ov_model = core().read_model(str(path))
            except Exception as exc:
                raise unsupported(NAME, "reading the ONNX model", exc) from exc
        notes = []
        if int8:
            try:
                ov_model = nncf_int8(ov_model, calib)
            except Exception as exc:
                raise unsupported(NAME, "int8 quantization (nncf.quantize)", exc) from exc
            notes.append(f"NNCF int8 (default preset) calibrated on {sum(len(b) for b in calib)} training images")
        try:
            return OpenVINODeployed(
                ov_model, self.precision, self._kernels(int8), input_shape, batch, threads, int8, notes
            )
        except Exception as exc:
            raise unsupported(NAME, "compiling for the CPU plugin", exc) from exc

    def _load(self, path: Path, input_shape: tuple[int, ...], batch: int, threads: int) -> Deployed:
        ov_model = core().read_model(str(path))
        int8 = any(op.get_type_name() == "FakeQuantize" for op in ov_model.get_ops())
        return OpenVINODeployed(ov_model, self.precision, self._kernels(int8), input_shape, batch, threads, int8)
