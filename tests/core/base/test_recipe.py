"""The Recipe is the cache key, URL state and store key: it must round-trip and reject bad input clearly."""

import json

import pytest

from compress_core.base.recipe import BITS, FinetuneSpec, PruneSpec, QuantSpec, Recipe

RECIPES = [
    Recipe(),
    Recipe(PruneSpec("unstructured", "l1", "global", 0.5)),
    Recipe(PruneSpec("structured", "taylor", "layer", 0.3, skip=("first",), layer_sparsity=(("fc1", 0.9),))),
    Recipe(quant=QuantSpec(4, "asymmetric", "per_tensor")),
    Recipe(quant=QuantSpec(8, int8=True, int8_mode="static")),
    Recipe(
        PruneSpec("unstructured", "activation", "global", 0.95, seed=3),
        QuantSpec(1),
        FinetuneSpec(epochs=0.5, distill=True, schedule="agp", steps=3),
    ),
] + [Recipe(quant=QuantSpec(b)) for b in BITS]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.label())
def test_json_round_trip_is_exact_and_canonical(recipe):
    text = recipe.to_json()
    back = Recipe.from_json(text)
    assert back == recipe
    assert hash(back) == hash(recipe)
    assert back.to_json() == text  # canonical: usable as a cache and store key


def test_layer_sparsity_order_does_not_change_identity():
    a = PruneSpec("unstructured", layer_sparsity=(("b", 0.1), ("a", 0.2)))
    b = PruneSpec("unstructured", layer_sparsity=(("a", 0.2), ("b", 0.1)))
    assert a == b and Recipe(a).to_json() == Recipe(b).to_json()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sparsity": 1.0}, "sparsity must be between 0 and 0.99"),
        ({"sparsity": -0.1}, "sparsity must be between 0 and 0.99"),
        ({"sparsity": float("nan")}, "sparsity must be between"),
        ({"sparsity": "half"}, "sparsity must be a number"),
        ({"kind": "magic"}, "prune kind must be one of"),
        ({"criterion": "l3"}, "criterion must be one of"),
        ({"scope": "network"}, "scope must be one of"),
        ({"skip": "conv1"}, "skip must be a list"),
        ({"layer_sparsity": (("fc1", 2.0),)}, "sparsity of layer 'fc1'"),
    ],
)
def test_bad_prune_specs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PruneSpec(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bits": 5}, "bits must be one of 1, 2, 3, 4, 6, 8, 16, 32"),
        ({"bits": True}, "bits must be one of"),
        ({"scheme": "log"}, "quantization scheme must be one of"),
        ({"granularity": "per_group"}, "granularity must be one of"),
        ({"bits": 4, "int8": True}, "real int8 kernels need bits=8"),
    ],
)
def test_bad_quant_specs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantSpec(**kwargs)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "recipe is not valid JSON"),
        ("[]", "a recipe must be a JSON object"),
        ('{"prune": {"sparsity": 0.5, "amount": 3}}', "unknown prune field"),
        ('{"colour": 1}', "unknown recipe field"),
        ('{"version": 99}', "recipe version 99 is not supported"),
        ('{"quant": 8}', "recipe field 'quant' must be a JSON object"),
        ('{"finetune": {"epochs": -1}}', "finetune epochs must be a positive number"),
    ],
)
def test_bad_json_is_rejected_with_a_specific_message(text, message):
    with pytest.raises(ValueError, match=message):
        Recipe.from_json(text)


def test_recipe_is_immutable():
    r = Recipe()
    with pytest.raises(AttributeError):
        r.prune.sparsity = 0.5  # type: ignore[misc]


def test_labels_and_density():
    assert Recipe().is_dense and Recipe().label() == "dense fp32"
    r = Recipe(PruneSpec("structured", "l1", "global", 0.5), QuantSpec(8, int8=True))
    assert not r.is_dense
    assert r.label() == "structured l1 global 50% + int8 kernels"
    assert json.loads(r.to_json())["prune"]["kind"] == "structured"


def test_recovery_round_trips_and_leaves_older_recipes_json_unchanged():
    plain = Recipe(PruneSpec("unstructured", sparsity=0.5))
    assert "recovery" not in plain.to_json()  # the cache, URL and store key of recipes written before it existed
    rec = plain.with_recovery("reconstruct")
    assert Recipe.from_json(rec.to_json()) == rec and rec.recovery == "reconstruct"
    assert rec.label().endswith("reconstructed") and rec != plain


def test_unknown_recovery_level_is_refused():
    with pytest.raises(ValueError, match="recovery must be one of none, bn, reconstruct"):
        Recipe(recovery="magic")
