"""ONNX export of a (compressed) float model: one self-contained ``.onnx`` file as bytes."""

from __future__ import annotations

import os
import re
import tempfile
import warnings

import torch
from torch import nn

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def onnx_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The ONNX file of ``model`` for one sample of ``input_shape`` (CHW, no batch dimension).

    Uses ``torch.onnx.export(dynamo=True)`` with the weights inside the file (no external data); the
    graph's input is named ``input`` and its output ``logits``. A structurally pruned model exports
    with its smaller layers; masked (unstructured) zeros are exported as stored zeros. An uploaded
    torch.export program exports its own graph (at its fixed batch size, if it has one). Raises
    ``ValueError`` for a bad shape or a model the exporter cannot convert, in one line."""
    if not input_shape or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(f"input_shape must be positive ints like (1, 28, 28); got {input_shape!r}")
    from compress_core.files.uploads import ExportedGraph

    batch = 1
    if isinstance(model, ExportedGraph):  # its wrapper confuses the exporter; the graph itself converts
        batch = model.batch or 1
        model = model.graph
    else:
        model = model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (torch.zeros(batch, *input_shape),),
                    path,
                    dynamo=True,
                    external_data=False,
                    input_names=["input"],
                    output_names=["logits"],
                    verbose=False,
                )
        except Exception as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), "no detail")
            raise ValueError(
                f"{type(exc).__name__}: {ANSI.sub('', first).strip()[:200]} "
                "(torch.onnx.export could not convert this model)"
            ) from exc
        with open(path, "rb") as fh:
            return fh.read()
