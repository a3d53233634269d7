"""Quantization and fine-tuning as code: int8 as PruneScope's ``torch.ao.quantization`` calls (FX static, or
dynamic for Linear-only nets); fp16 and k-bit weights as the lines that reproduce them, said to be simulated;
fine-tuning as a comment with the recipe's settings."""

from __future__ import annotations

from compress_core.base.recipe import FinetuneSpec, QuantSpec
from compress_core.files.codegen.recover import kbit_lines
from compress_core.files.codegen.target import Target, literal, shape_args


def _int8(q: QuantSpec, t: Target, imports: list[str], images: int) -> list[str]:
    has_conv = t.layers is None or any(kind == "Conv2d" for _, kind in t.layers)
    if (q.int8_mode if q.int8_mode != "auto" else ("static" if has_conv else "dynamic")) == "dynamic":
        imports.append("from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic")
        return [
            "# int8 dynamic, as PruneScope runs it: Linear weights int8 per channel, activations per batch",
            "model = quantize_dynamic(model.eval(), {nn.Linear: per_channel_dynamic_qconfig})",
        ]
    imports += [
        "from torch.ao.quantization import get_default_qconfig_mapping",
        "from torch.ao.quantization.fx.custom_config import PrepareCustomConfig",
        "from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx",
    ]
    lines = [
        "# int8 static (FX post-training quantization), as PruneScope runs it: weights int8 per channel,",
        "# activations uint8 per tensor calibrated on training images, BatchNorm folded into the convolutions",
        "if not calib_batches:",
        '    raise ValueError("int8 static needs calib_batches: a few hundred training images, in batches")',
        'engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"',
        "torch.backends.quantized.engine = engine",
        "custom = PrepareCustomConfig()",
    ]
    if t.pad_shortcuts:
        imports += [
            "from compress_core.models.cifar_resnet import PadShortcut  # option-A shortcut: no int8 kernel",
            "from compress_core.engine.prune.scatter import ChannelScatter",
        ]
        lines.append("custom.set_non_traceable_module_classes([PadShortcut, ChannelScatter])  # they stay fp32")
    return [
        *lines,
        "prepared = prepare_fx(model.eval(), get_default_qconfig_mapping(engine),",
        f"                      example_inputs=(torch.zeros(1, {shape_args(t)}),), prepare_custom_config=custom)",
        f"with torch.no_grad():  # PruneScope calibrates on the first {images} training images, in batches of 64",
        f"    for x in torch.cat(calib_batches)[:{images}].split(64):",
        "        prepared(x)",
        "model = convert_fx(prepared).eval()",
    ]


def quant_lines(q: QuantSpec, t: Target, imports: list[str], ours: bool = False, images: int = 256) -> list[str]:
    """The quantization lines; ``ours``: k-bit / fp16 weights through PruneScope's ``quantize_weights_`` (for the
    reconstruction after it: ``codegen.recover``); ``images``: how many calibration images int8 static uses."""
    if not q.active:
        return []
    if q.int8:
        return _int8(q, t, imports, images)
    if ours:
        what = "fp16 weights" if q.bits == 16 and not q.layer_bits else f"{q.bits}-bit {q.scheme} weights"
        return [
            f"# {what}: PruneScope's own scheme (simulated: the model computes in fp32), applied by compress_core",
            "# because the reconstruction below keeps the weights on this grid and updates their codes.",
            *kbit_lines(imports),
        ]
    loop = [
        "with torch.no_grad():",
        "    for m in model.modules():",
        "        if isinstance(m, (nn.Conv2d, nn.Linear)):  # every layer, skip list or not",
    ]
    if q.bits == 16:
        return [
            "# fp16: PruneScope rounds the weights to half precision and computes in fp32 (simulated);",
            "# for real fp16 kernels use model.half() on a GPU.",
            *loop,
            "            m.weight.copy_(m.weight.half().float())",
        ]
    imports.append("from compress_core.engine.quantize import fake_quantize  # PruneScope's own k-bit scheme")
    scheme = "1-bit sign x scale" if q.bits == 1 else f"{q.bits}-bit {q.scheme}"
    per_channel = q.granularity == "per_channel"
    return [
        f"# {scheme} {q.granularity.replace('_', '-')} weights are PruneScope's own scheme (simulated: the",
        f"# .psz file stores {q.bits}-bit codes, the model computes in fp32). No torch.ao call matches it;",
        "# these lines give the weights PruneScope evaluates (e.g. to check accuracy in your own evaluation):",
        *loop,
        f"            m.weight.copy_(fake_quantize(m.weight, {q.bits}, {literal(q.scheme)}, {per_channel}))",
    ]


def finetune_lines(ft: FinetuneSpec | None, unstructured: bool) -> list[str]:
    if ft is None:
        return []
    kd = f", distilled from the dense model (T={ft.temperature:g}, alpha={ft.alpha:g})" if ft.distill else ""
    cap = f", at most {ft.max_samples} images per epoch" if ft.max_samples else ""
    lines = [
        f"# Fine-tune here: PruneScope trains {ft.epochs:g} epoch(s), SGD (momentum 0.9, nesterov, weight",
        f"# decay 5e-4), lr {ft.lr:g} cosine-annealed to 0, batch {ft.batch_size}{cap}{kd}.",
    ]
    if unstructured:
        lines.append("# The masks are still attached, so the pruned weights stay zero while you train.")
    if ft.schedule != "oneshot":
        lines += [
            f"# Schedule {ft.schedule} in {ft.steps} steps: PruneScope prunes gradually and fine-tunes between",
            "# steps; to follow it, run this pruning with growing amounts between epochs.",
        ]
    return lines
