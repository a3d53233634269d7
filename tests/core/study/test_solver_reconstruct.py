"""Reconstruction of a mixed-bit recipe (the solver's answers: ``QuantSpec.layer_bits``): every layer is
re-fitted onto the grid of its own bit-width, its codes and weights agree exactly, and the recovered model is
not less accurate than the one-shot one on LeNet-5's test set (beyond noise)."""

from __future__ import annotations

import copy

import torch

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench
from compress_core.engine.prune.layers import prunable_layers
from compress_core.engine.recover import recover_
from compress_core.study.solver.profile import logits

MODEL = "lenet5-mnist"


def _mixed(wb: Workbench) -> Recipe:
    names = [n for n, _ in prunable_layers(wb.model, skip=())]
    layer_bits = ((names[0], 8), (names[-1], 3), (names[1], 32))  # the rest at the default 4 bits
    prune = PruneSpec(kind="unstructured", scope="layer", sparsity=0.0, skip=(), layer_sparsity=((names[2], 0.8),))
    return Recipe(prune=prune, quant=QuantSpec(bits=4, layer_bits=layer_bits))


def _accuracy(model: torch.nn.Module, wb: Workbench) -> float:
    data = wb.eval_data("full")
    return float((logits(model, data).argmax(1) == data.y).float().mean())


def test_reconstruct_fits_each_layer_on_its_own_bits_and_is_not_worse():
    wb = Workbench(MODEL)
    recipe = _mixed(wb)
    comp = wb.compress(recipe)  # one shot (recovery none)
    model, qcodes = copy.deepcopy(comp.float_model), {k: copy.deepcopy(v) for k, v in comp.qcodes.items()}
    report = recover_(
        model, wb.model, "reconstruct", wb.recovery_images(), masks=comp.masks, qcodes=qcodes, quant=recipe.quant
    )
    for name, layer in prunable_layers(model, skip=()):
        bits = recipe.quant.bits_of(name)
        if bits == 32:
            assert name not in qcodes
            continue
        assert qcodes[name].bits == bits  # the layer's own bit-width, not the default
        assert torch.equal(qcodes[name].dequantize(), layer.weight.detach())  # exactly on its grid
    methods = {row["name"]: row["method"] for row in report.layers}
    names = [n for n, _ in prunable_layers(model, skip=())]
    assert "GPTQ 8-bit" in methods[names[0]] and "GPTQ 3-bit" in methods[names[-1]]
    assert "GPTQ" not in methods[names[1]]  # kept fp32: a float re-fit only
    assert _accuracy(model, wb) >= _accuracy(comp.float_model, wb) - 0.003  # 10,000 images: 0.3 pp of noise


def test_a_mixed_bit_recipe_evaluates_with_reconstruct():
    wb = Workbench(MODEL)
    recipe = _mixed(wb)
    full = MeasureSettings("full", latency=False)
    none = wb.evaluate(recipe, full)
    rec = wb.evaluate(recipe.with_recovery("reconstruct"), full)
    assert rec.accuracy >= none.accuracy - 0.003
