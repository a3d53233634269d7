"""Real int8 kernels on CPU, behind one adapter (today torch.ao.quantization; torchao later).

- ``static``: FX graph mode post-training quantization (``prepare_fx``/``convert_fx``) with the x86
  backend's default qconfig: weights int8 symmetric per output channel, activations uint8 per-tensor
  affine with a 7-bit range (``reduce_range``, safe on CPUs without VNNI), calibrated on training
  images. BatchNorm is folded into the preceding convolution; ops without int8 kernels (e.g. the
  option-A shortcut's channel padding) run in fp32 between dequantize and quantize.
- ``dynamic``: ``quantize_dynamic`` on ``nn.Linear``: int8 per-channel weights, activations quantized
  per batch at run time; every other layer stays fp32.
- ``auto``: static when the model has a Conv2d, dynamic otherwise.

The int8 path quantizes the float weights itself, so no simulated k-bit step precedes it.

Artefact support: ``int8_state(comp)`` flattens the int8 model's state_dict into plain tensors and
``rebuild_int8(float_model, mode, input_shape, state)`` rebuilds a model with identical outputs.
Key scheme of ``int8_state`` (``K`` is a key of the int8 model's ``state_dict``):
- a plain tensor (bias, activation ``scale``/``zero_point`` buffers, index buffers): ``K``
- a quantized tensor: ``K::int_repr`` (int8/uint8 codes), ``K::scale`` (float64, one per channel or a
  scalar), ``K::zero_point`` (int64, same shape), and ``K::axis`` (int64 scalar) when per-channel
- a tuple (a Linear's packed ``(weight, bias)``): element ``i`` under ``K::i`` with the rules above;
  ``None`` elements are left out
- ``torch.dtype`` entries (``_packed_params.dtype``) are not stored: the mode determines them.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import torch
from torch import nn

from compress_core.base.recipe import QuantSpec
from compress_core.base.records import Calibration, Compressed
from compress_core.engine.prune.scatter import ChannelScatter
from compress_core.models.cifar_resnet import PadShortcut

MODES = ("auto", "static", "dynamic")
SEP = "::"


def backend() -> str:
    """The quantized engine for static int8: x86 (fbgemm + onednn) where available, else qnnpack (ARM)."""
    engines = torch.backends.quantized.supported_engines
    return "x86" if "x86" in engines else "qnnpack"


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch.ao's deprecation and observer warnings for the duration of a conversion."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quant_min and quant_max.*")
        warnings.filterwarnings("ignore", module=r"torch\.ao\..*")
        yield


def resolve_mode(model: nn.Module, mode: str) -> str:
    """``auto`` becomes ``static`` for models with a Conv2d, else ``dynamic``."""
    if mode not in MODES:
        raise ValueError(f"int8 mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "auto":
        return "static" if any(isinstance(m, nn.Conv2d) for m in model.modules()) else "dynamic"
    return mode


def _use_engine() -> str:
    engine = backend()
    if torch.backends.quantized.engine != engine:
        torch.backends.quantized.engine = engine
    return engine


_FX_TRACE_LOCK = threading.Lock()  # one FX trace at a time: each patches nn.Module.__call__ process-wide


def _thread_safe_tracer() -> type:
    """prepare_fx's tracer, except that module calls from *other* threads during the trace run eagerly."""
    from torch.ao.quantization.fx.tracer import QuantizationTracer

    class ThreadSafeTracer(QuantizationTracer):
        def trace(self, root, concrete_args=None):
            self._owner = threading.get_ident()
            return super().trace(root, concrete_args)

        def call_module(self, m, forward, args, kwargs):
            if threading.get_ident() != self._owner:
                return forward(*args, **kwargs)
            return super().call_module(m, forward, args, kwargs)

        def getattr(self, attr, attr_val, parameter_proxy_cache):
            if threading.get_ident() != self._owner:
                return attr_val
            return super().getattr(attr, attr_val, parameter_proxy_cache)

    return ThreadSafeTracer


def quantize_static(float_model: nn.Module, example: torch.Tensor, calib: list[torch.Tensor]) -> nn.Module:
    """FX post-training static quantization of a copy of ``float_model``, calibrated on ``calib``."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = _use_engine()
    # Option-A shortcuts have no int8 kernel: keep each one a single fp32 module in the graph.
    custom = PrepareCustomConfig().set_non_traceable_module_classes([PadShortcut, ChannelScatter])
    with (
        _quiet(),
        _FX_TRACE_LOCK,
        mock.patch("torch.ao.quantization.quantize_fx.QuantizationTracer", _thread_safe_tracer()),
    ):
        prepared = prepare_fx(
            copy.deepcopy(float_model).eval(),
            get_default_qconfig_mapping(engine),
            example_inputs=(example,),
            prepare_custom_config=custom,
        )
    with _quiet():
        with torch.no_grad():
            for x in calib:
                prepared(x)
        return convert_fx(prepared).eval()


def quantize_dynamic(float_model: nn.Module) -> nn.Module:
    """Dynamic int8 for every nn.Linear of a copy of ``float_model`` (per-channel weights)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig
    from torch.ao.quantization import quantize_dynamic as ao_quantize_dynamic

    if not any(isinstance(m, nn.Linear) for m in float_model.modules()):
        raise ValueError("dynamic int8 quantizes nn.Linear layers only and this model has none; use int8 mode 'static'")
    _use_engine()
    with _quiet():
        return ao_quantize_dynamic(copy.deepcopy(float_model).eval(), {nn.Linear: per_channel_dynamic_qconfig}).eval()


def _fp32_ops(model: nn.Module) -> list[str]:
    """Ops of a converted GraphModule that run in fp32 between dequantize and quantize."""
    graph = getattr(model, "graph", None)
    if graph is None:
        return []
    modules = dict(model.named_modules())
    names = []
    for node in graph.nodes:
        if node.op != "call_method" or node.target != "dequantize":
            continue
        for user in node.users:
            if user.op == "output":
                continue
            if user.op == "call_module":
                names.append(type(modules[user.target]).__name__)
            else:
                names.append(getattr(user.target, "__name__", str(user.target)))
    return names


def convert_int8(
    comp: Compressed, q: QuantSpec, calibration: Calibration, input_shape: tuple[int, ...] | None = None
) -> None:
    """Set ``comp.model`` to the int8 version of ``comp.float_model``, with kernels label and notes."""
    mode = resolve_mode(comp.float_model, q.int8_mode)
    calib = calibration.images
    if mode == "static":
        if not calib:
            raise ValueError(
                "static int8 needs calibration images (training data), which are not available "
                "for this model; use int8 mode 'dynamic' or provide the data folder"
            )
        example = calib[0][:1] if input_shape is None else torch.zeros(1, *input_shape)
        comp.model = quantize_static(comp.float_model, example, calib)
        n_images = sum(len(x) for x in calib)
        comp.kernels = f"int8-{backend()}-static"
        comp.simulated.append(
            f"int8 static ({backend()}): weights int8 per-channel, activations uint8 per-tensor (7-bit range) "
            f"calibrated on {n_images} training images; BatchNorm folded into convolutions"
        )
        fp32_ops = _fp32_ops(comp.model)
        if fp32_ops:
            comp.simulated.append(
                f"{len(fp32_ops)} op(s) without int8 kernels run in fp32 between dequantize "
                f"and quantize: {', '.join(sorted(set(fp32_ops)))}"
            )
    else:
        comp.model = quantize_dynamic(comp.float_model)
        comp.kernels = "int8-dynamic"
        comp.simulated.append(
            "int8 dynamic: Linear weights int8 per-channel, activations quantized per batch "
            "at run time; convolutions and other layers run in fp32"
        )


# -- artefact support -----------------------------------------------------------------------------


def _flatten_value(key: str, value: Any, out: dict[str, torch.Tensor]) -> None:
    if isinstance(value, torch.Tensor) and value.is_quantized:
        out[key + SEP + "int_repr"] = value.int_repr().contiguous()
        if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            out[key + SEP + "scale"] = value.q_per_channel_scales().double().contiguous()
            out[key + SEP + "zero_point"] = value.q_per_channel_zero_points().long().contiguous()
            out[key + SEP + "axis"] = torch.tensor(value.q_per_channel_axis(), dtype=torch.long)
        else:
            out[key + SEP + "scale"] = torch.tensor(value.q_scale(), dtype=torch.float64)
            out[key + SEP + "zero_point"] = torch.tensor(value.q_zero_point(), dtype=torch.long)
    elif isinstance(value, torch.Tensor):
        out[key] = value.detach().clone().contiguous()
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            if item is not None:
                _flatten_value(f"{key}{SEP}{i}", item, out)
    elif not isinstance(value, torch.dtype):
        raise ValueError(f"int8 state entry {key!r} has unsupported type {type(value).__name__}")


def int8_state(comp: Compressed) -> dict[str, torch.Tensor]:
    """The int8 model's state as plain tensors that safetensors can store (key scheme: module docstring)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in comp.model.state_dict().items():
        _flatten_value(key, value, out)
    return out


def _unflatten_value(key: str, template: Any, state: dict[str, torch.Tensor]) -> Any:
    if isinstance(template, torch.Tensor) and template.is_quantized:
        codes, scale, zp = (_take(state, key + SEP + part) for part in ("int_repr", "scale", "zero_point"))
        if key + SEP + "axis" in state:
            axis = int(state[key + SEP + "axis"])
            return torch._make_per_channel_quantized_tensor(codes, scale.double(), zp.long(), axis)
        return torch._make_per_tensor_quantized_tensor(codes, float(scale), int(zp))
    if isinstance(template, torch.Tensor):
        value = _take(state, key)
        if value.shape != template.shape:
            raise ValueError(
                f"int8 state {key!r} has shape {tuple(value.shape)} but the model expects "
                f"{tuple(template.shape)}: was it saved from a differently pruned model?"
            )
        return value.to(template.dtype)
    if isinstance(template, tuple):
        return tuple(
            None if item is None else _unflatten_value(f"{key}{SEP}{i}", item, state) for i, item in enumerate(template)
        )
    return template  # torch.dtype entries


def _take(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    try:
        return state[key]
    except KeyError:
        raise ValueError(f"int8 state lacks {key!r}: it was saved from a different model or int8 mode") from None


def rebuild_int8(
    float_model: nn.Module, mode: str, input_shape: tuple[int, ...], state: dict[str, torch.Tensor]
) -> nn.Module:
    """An int8 model with the stored weights, scales and zero points: the same graph is built from
    ``float_model`` (the architecture, e.g. after structured pruning; its weights do not matter) by
    one dummy calibration pass, then every tensor is replaced by the stored one."""
    mode = resolve_mode(float_model, mode)
    if mode == "static":
        example = torch.zeros(1, *input_shape)
        model = quantize_static(float_model, example, [example])
    else:
        model = quantize_dynamic(float_model)
    template = model.state_dict()
    rebuilt = OrderedDict((key, _unflatten_value(key, value, state)) for key, value in template.items())
    # module versions steer quantized loading; torch sets _metadata on its OrderedDict, untyped
    rebuilt._metadata = getattr(template, "_metadata", None)  # type: ignore[attr-defined]
    with _quiet():
        model.load_state_dict(rebuilt)
    return model.eval()
