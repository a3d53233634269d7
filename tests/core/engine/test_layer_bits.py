"""Per-layer bit-widths (QuantSpec.layer_bits): validated, JSON-stable, applied by the quantize stage and
stored per tensor in the artefact, bit-exactly."""

import pytest
import torch

from compress_core import models
from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.engine.stages import apply_recipe
from compress_core.files.artifact import artifact_bytes, load_artifact


def _lenet():
    torch.manual_seed(0)
    return models.build("lenet5-mnist").eval()


def test_layer_bits_are_sorted_and_round_trip_through_json():
    q = QuantSpec(bits=4, layer_bits=(("fc1", 2), ("conv1", 8)))
    assert q.layer_bits == (("conv1", 8), ("fc1", 2))
    r = Recipe(quant=q)
    back = Recipe.from_json(r.to_json())
    assert back == r and back.quant.bits_of("fc1") == 2 and back.quant.bits_of("fc2") == 4
    assert Recipe.from_dict({"quant": {"bits": 4, "layer_bits": {"fc1": 2, "conv1": 8}}}) == r


def test_recipes_without_layer_bits_keep_their_json():
    assert "layer_bits" not in Recipe(quant=QuantSpec(bits=4)).to_json()
    assert Recipe().to_json() == (
        '{"finetune":null,"prune":{"criterion":"l1","kind":"none","layer_sparsity":[],"residual":true,'
        '"scope":"global","seed":0,"skip":["first","last"],"sparsity":0.0},"quant":{"bits":32,'
        '"granularity":"per_channel","int8":false,"int8_mode":"auto","scheme":"symmetric"},"version":1}'
    )


@pytest.mark.parametrize(
    ("layer_bits", "message"),
    [
        ((("fc1", 5),), "bits of layer 'fc1' must be one of"),
        ((("fc1", True),), "bits of layer 'fc1' must be one of"),
        ((("fc1", 4), ("fc1", 2)), "names layer 'fc1' twice"),
        ((("fc1",),), "entries must be [layer_name, bits]"),
        ("fc1", "must be a list of [layer, bits] pairs"),
    ],
)
def test_bad_layer_bits_say_what_is_wrong(layer_bits, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        QuantSpec(layer_bits=layer_bits)


def test_int8_kernels_refuse_layer_bits():
    with pytest.raises(ValueError, match="every layer at 8 bits"):
        QuantSpec(bits=8, int8=True, layer_bits=(("fc1", 4),))


def test_layer_bits_alone_make_a_recipe_compressed():
    r = Recipe(quant=QuantSpec(layer_bits=(("fc1", 4),)))
    assert r.quant.active and r.compressed and not r.is_dense


def test_quantize_stage_gives_each_layer_its_own_bits():
    recipe = Recipe(quant=QuantSpec(bits=8, layer_bits=(("fc1", 2), ("fc3", 32))))
    comp = apply_recipe(_lenet(), recipe)
    assert comp.qcodes["fc1"].bits == 2 and comp.qcodes["conv1"].bits == 8 and "fc3" not in comp.qcodes
    assert all(len(torch.unique(row)) <= 3 for row in comp.float_model.fc1.weight)  # 2-bit: -1, 0, +1 x a row scale
    assert torch.equal(comp.float_model.fc3.weight, _lenet().fc3.weight)  # left fp32


def test_unknown_layer_in_layer_bits_is_an_error():
    with pytest.raises(ValueError, match="layer_bits names no Conv2d/Linear layer of this model: nope"):
        apply_recipe(_lenet(), Recipe(quant=QuantSpec(layer_bits=(("nope", 4),))))


def test_artefact_stores_per_layer_bits_and_loads_bit_exactly():
    mixed = Recipe(
        prune=PruneSpec(kind="unstructured", sparsity=0.5),
        quant=QuantSpec(bits=4, layer_bits=(("fc1", 2), ("conv1", 16), ("fc3", 32))),
    )
    comp = apply_recipe(_lenet(), mixed)
    data = artifact_bytes(comp, "lenet5-mnist")
    loaded = load_artifact(data)
    assert loaded.recipe == mixed
    for key, want in comp.float_model.state_dict().items():
        assert torch.equal(loaded.float_model.state_dict()[key], want), key
    assert loaded.qcodes["fc1"].bits == 2 and loaded.qcodes["fc2"].bits == 4
    uniform4 = artifact_bytes(apply_recipe(_lenet(), mixed.with_quant(layer_bits=())), "lenet5-mnist")
    assert len(data) < len(uniform4)  # fc1 (most of LeNet-5's weights) at 2 bits instead of 4
