"""ONNX export of a (compressed) float model: one self-contained ``.onnx`` file as bytes."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import warnings

import torch
from torch import nn

ANSI = re.compile(r"\x1b\[[0-9;]*m")
DYNAMIC_EXAMPLE_BATCH = 2  # a batch of 1 would let the exporter specialise the batch dimension to 1
STACK_TRACE = "pkg.torch.onnx.stack_trace"  # node metadata the exporter writes: source paths and lines


def onnx_bytes(model: nn.Module, input_shape: tuple[int, ...], dynamic_batch: bool = False) -> bytes:
    """The ONNX file of ``model`` for samples of ``input_shape`` (CHW, no batch dimension): batch 1, or with
    ``dynamic_batch`` any batch (the first dimension is the symbolic ``batch``).

    Uses ``torch.onnx.export(dynamo=True)`` with the weights inside the file (no external data); the
    graph's input is named ``input`` and its output ``logits``. A structurally pruned model exports
    with its smaller layers; masked (unstructured) zeros are exported as stored zeros. An uploaded
    torch.export program exports its own graph (at its fixed batch size, if it has one). Raises
    ``ValueError`` for a bad shape or a model the exporter cannot convert, in one line."""
    if not input_shape or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(f"input_shape must be positive ints like (1, 28, 28); got {input_shape!r}")
    from compress_core.files.uploads import ExportedGraph

    batch = DYNAMIC_EXAMPLE_BATCH if dynamic_batch else 1
    if isinstance(model, ExportedGraph):  # its wrapper confuses the exporter; the graph itself converts
        if model.batch:  # a program exported at a fixed batch keeps it
            batch, dynamic_batch = model.batch, False
        model = model.graph
    else:
        model = model.eval()
    try:
        return export(model, torch.zeros(batch, *input_shape), dynamic_batch=dynamic_batch)
    except Exception as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "no detail")
        raise ValueError(
            f"{type(exc).__name__}: {ANSI.sub('', first).strip()[:200]} "
            "(torch.onnx.export could not convert this model)"
        ) from exc


def export(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = False) -> bytes:
    """The one ONNX exporter: ``torch.onnx.export(dynamo=True)`` of ``model`` on ``example``, weights inside
    the file, input ``input`` and output ``logits``; with ``dynamic_batch`` the first dimension is the
    symbolic ``batch`` (the runtimes' files, ``deploy.runtimes.onnx_file``). The exporter's own exception
    goes on; its warnings and printed progress are kept off the caller's output."""
    dynamic = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "model.onnx")
        torch.onnx.export(
            model,
            (example,),
            path,
            dynamo=True,
            external_data=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=dynamic,
            verbose=False,
        )
        with open(path, "rb") as fh:
            return _without_stack_traces(fh.read())


def _without_stack_traces(data: bytes) -> bytes:
    """The file without the exporter's per-node Python stack traces (``pkg.torch.onnx.stack_trace``): they
    name this machine's absolute source paths, so the file a user ships would carry them and its bytes
    would depend on where the project is installed. Nothing a runtime reads is touched."""
    import onnx

    model = onnx.load_from_string(data)
    for container in (model.graph, *model.functions):  # the main graph and any local functions
        for node in container.node:
            keep = [p for p in node.metadata_props if p.key != STACK_TRACE]
            if len(keep) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(keep)
    return model.SerializeToString()
