"""Recipe -> code (issue 15): every generated snippet runs against a zoo model and reproduces its recipe:
the non-zero count exactly for unstructured pruning (torch.nn.utils.prune), every layer's channel counts
exactly for structured pruning (torch-pruning), and the weights or int8 outputs for quantization."""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from compress_core.base.recipe import CRITERIA, FinetuneSpec, PruneSpec, QuantSpec, Recipe
from compress_core.bench.workbench import Workbench
from compress_core.engine.measure import count_params
from compress_core.files.codegen import recipe_code
from compress_core.models import load
from tests.conftest import ROOT

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def benches() -> dict[str, Workbench]:
    return {}


def _bench(benches: dict[str, Workbench], model_id: str) -> Workbench:
    if model_id not in benches:
        benches[model_id] = Workbench(model_id)
    return benches[model_id]


def run_snippet(code: str, model: nn.Module, calib=None) -> nn.Module:
    namespace: dict = {"__name__": "prunescope_recipe"}
    exec(compile(code, "prunescope_recipe.py", "exec"), namespace)  # the generated file, as a user runs it
    return namespace["prunescope_recipe"](model, calib)


def widths(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(inputs, outputs) of every Conv2d/Linear: the channel counts structured pruning changes."""
    return {
        n: (m.in_channels, m.out_channels) if isinstance(m, nn.Conv2d) else (m.in_features, m.out_features)
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }


def _reproduces(wb: Workbench, recipe: Recipe, reference: Recipe | None = None, **kw) -> None:
    """The snippet for ``recipe`` gives ``reference``'s (default: the recipe's own) non-zero count and widths."""
    out = run_snippet(recipe_code(recipe, wb.model_id, **kw), load(wb.model_id))
    want = wb.compress(reference or recipe).float_model
    assert count_params(out) == count_params(want)
    assert widths(out) == widths(want)


U = "unstructured"
S = "structured"
LENET_OVERRIDE = (("fc1", 0.7),)


# -- unstructured: torch.nn.utils.prune -------------------------------------------------------------
@pytest.mark.parametrize(
    "criterion, scope, sparsity, overrides",
    [
        ("l1", "layer", 0.5, ()),
        ("l1", "global", 0.9, ()),
        ("l1", "global", 0.83, LENET_OVERRIDE),
        ("l1", "layer", 0.3, LENET_OVERRIDE),
        ("random", "layer", 0.5, ()),
        ("random", "global", 0.7, LENET_OVERRIDE),
        ("l2", "global", 0.6, ()),
        ("taylor", "layer", 0.5, ()),
        ("activation", "global", 0.8, ()),
    ],
)
def test_unstructured_snippets_remove_exactly_the_recipes_weights(benches, criterion, scope, sparsity, overrides):
    recipe = Recipe(PruneSpec(U, criterion, scope, sparsity, layer_sparsity=overrides))
    _reproduces(_bench(benches, "lenet5-mnist"), recipe)


def test_an_unstructured_snippet_with_an_empty_skip_list_prunes_every_layer(benches):
    _reproduces(_bench(benches, "lenet5-mnist"), Recipe(PruneSpec(U, "l1", "global", 0.5, skip=())))


def test_the_unstructured_snippet_says_what_it_does():
    code = recipe_code(Recipe(PruneSpec(U, "taylor", "global", 0.9)), "lenet5-mnist")
    assert "prune.global_unstructured(" in code and "pruning_method=prune.L1Unstructured, amount=0.9" in code
    assert 'skip = {"conv1", "fc3"}' in code and 'prune.remove(m, "weight")' in code
    assert "taylor criterion" in code and "has no" in code  # the stand-in is said, not hidden
    layer = recipe_code(Recipe(PruneSpec(U, "random", "layer", 0.5)), "lenet5-mnist")
    assert 'prune.random_unstructured(m, "weight", amount=0.5)' in layer


# -- structured: torch-pruning ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "criterion, scope, sparsity, overrides",
    [
        ("l1", "layer", 0.5, ()),
        ("l1", "layer", 0.3, ()),
        ("l1", "global", 0.5, ()),
        ("l2", "global", 0.83, ()),
        ("random", "global", 0.5, ()),
        ("random", "layer", 0.3, LENET_OVERRIDE),
        ("l1", "global", 0.6, LENET_OVERRIDE),
    ],
)
def test_structured_snippets_reproduce_every_layers_channel_counts(benches, criterion, scope, sparsity, overrides):
    recipe = Recipe(PruneSpec(S, criterion, scope, sparsity, layer_sparsity=overrides))
    _reproduces(_bench(benches, "lenet5-mnist"), recipe)


@pytest.mark.parametrize("scope, sparsity, round_to", [("layer", 0.3, 8), ("global", 0.5, 4), ("global", 0.6, 16)])
def test_structured_snippets_with_round_to_keep_prunescopes_multiples(benches, scope, sparsity, round_to):
    recipe = Recipe(PruneSpec(S, "l1", scope, sparsity, round_to=round_to))
    _reproduces(_bench(benches, "lenet5-mnist"), recipe)
    assert f"R = {round_to}  # round_to" in recipe_code(recipe, "lenet5-mnist")
    assert "R = " not in recipe_code(Recipe(PruneSpec(S, "l1", scope, sparsity)), "lenet5-mnist")


@pytest.mark.data
def test_a_resnet20_snippet_with_round_to_reproduces_its_channels(benches):
    _reproduces(_bench(benches, "resnet20-cifar10"), Recipe(PruneSpec(S, "l1", "global", 0.5, round_to=8)))


@pytest.mark.parametrize("criterion", ["taylor", "activation"])
def test_structured_data_criteria_keep_the_layer_counts_and_say_they_rank_by_l1(benches, criterion):
    wb = _bench(benches, "lenet5-mnist")
    _reproduces(wb, Recipe(PruneSpec(S, criterion, "layer", 0.5)))  # layer scope: counts do not depend on scores
    code = recipe_code(Recipe(PruneSpec(S, criterion, "global", 0.5)), wb.model_id)
    assert "the code reproduces PruneScope's\n    # l1 recipe exactly" in code
    _reproduces(wb, Recipe(PruneSpec(S, criterion, "global", 0.5)), Recipe(PruneSpec(S, "l1", "global", 0.5)))


def test_the_structured_snippet_uses_torch_pruning_and_no_compress_core_for_lenet():
    code = recipe_code(Recipe(PruneSpec(S, "l1", "global", 0.5)), "lenet5-mnist")
    body = code.split('if __name__ == "__main__":')[0]
    assert "import torch_pruning as tp" in body and "compress_core" not in body
    assert "tp.DependencyGraph().build_dependency(" in body and "GroupMagnitudeImportance(p=1" in body
    assert 'ignored = [model.get_submodule(n) for n in ("conv1", "fc3")]' in body


@pytest.mark.data
@pytest.mark.parametrize(
    "kind, criterion, scope, sparsity, residual, overrides",
    [
        (S, "l1", "layer", 0.5, True, ()),
        (S, "l1", "global", 0.5, True, ()),
        (S, "l2", "layer", 0.3, False, ()),
        (S, "random", "global", 0.83, True, (("layer2.0.conv1", 0.7),)),
        (S, "l1", "global", 0.5, False, ()),
        (U, "l1", "global", 0.9, True, ()),
        (U, "random", "layer", 0.5, True, (("layer2.0.conv1", 0.7),)),
    ],
)
def test_resnet20_snippets_reproduce_their_recipes(benches, kind, criterion, scope, sparsity, residual, overrides):
    recipe = Recipe(PruneSpec(kind, criterion, scope, sparsity, layer_sparsity=overrides, residual=residual))
    _reproduces(_bench(benches, "resnet20-cifar10"), recipe)
    if kind == S:  # option-A shortcuts: the one compress_core helper, and it says so
        assert "replace_pad_shortcuts_(model)" in recipe_code(recipe, "resnet20-cifar10")


def test_a_snippet_for_an_unknown_model_finds_the_skipped_layers_at_run_time(benches):
    wb = _bench(benches, "lenet5-mnist")
    for p in (PruneSpec(U, "l1", "global", 0.8), PruneSpec(S, "l1", "layer", 0.5)):
        code = recipe_code(Recipe(p), "upload-1234abcd", input_shape=(1, 28, 28))
        assert "convs = [n for n, m in model.named_modules()" in code and "__main__" not in code
        out = run_snippet(code, load(wb.model_id))
        want = wb.compress(Recipe(p)).float_model
        assert count_params(out) == count_params(want) and widths(out) == widths(want)


# -- quantization and fine-tuning -----------------------------------------------------------------
def _outputs(model: nn.Module, shape=(1, 28, 28)) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.randn(16, *shape, generator=torch.Generator().manual_seed(1)))


PRUNES = [PruneSpec(), PruneSpec(U, "l1", "global", 0.5), PruneSpec(S, "l1", "layer", 0.5)]
QUANTS = [QuantSpec(4), QuantSpec(2, "asymmetric", "per_tensor"), QuantSpec(1), QuantSpec(16)]


@pytest.mark.parametrize("prune_spec", PRUNES, ids=["none", "unstructured", "structured"])
@pytest.mark.parametrize("quant", QUANTS, ids=["4bit", "2bit-asym-tensor", "1bit", "fp16"])
def test_simulated_quantization_snippets_give_prunescopes_weights(benches, prune_spec, quant):
    wb = _bench(benches, "lenet5-mnist")
    recipe = Recipe(prune_spec, quant)
    code = recipe_code(recipe, wb.model_id)
    assert "simulated" in code
    assert torch.equal(_outputs(run_snippet(code, load(wb.model_id))), _outputs(wb.compress(recipe).model))


def test_dynamic_int8_snippet_matches_prunescopes_int8_model(benches):
    wb = _bench(benches, "lenet300-mnist")
    recipe = Recipe(PruneSpec(U, "l1", "global", 0.9), QuantSpec(8, int8=True))
    code = recipe_code(recipe, wb.model_id)
    assert "quantize_dynamic(model.eval(), {nn.Linear: per_channel_dynamic_qconfig})" in code
    assert torch.equal(_outputs(run_snippet(code, load(wb.model_id))), _outputs(wb.compress(recipe).model))


@pytest.mark.slow  # static int8 calibration, twice
def test_static_int8_snippet_matches_prunescopes_int8_model(benches):
    wb = _bench(benches, "lenet5-mnist")
    recipe = Recipe(PruneSpec(S, "l1", "layer", 0.5), QuantSpec(8, int8=True))
    code = recipe_code(recipe, wb.model_id)
    assert "prepare_fx(" in code and "convert_fx(prepared)" in code
    with pytest.raises(ValueError, match="needs calib_batches"):
        run_snippet(code, load(wb.model_id))
    got = run_snippet(code, load(wb.model_id), wb.calib())
    assert torch.equal(_outputs(got), _outputs(wb.compress(recipe).model))


def test_fine_tuning_is_a_comment_with_the_recipes_settings(benches):
    ft = FinetuneSpec(epochs=2, lr=0.005, distill=True, schedule="agp", steps=3)
    recipe = Recipe(PruneSpec(U, "l1", "global", 0.5), finetune=ft)
    code = recipe_code(recipe, "lenet5-mnist")
    assert "# Fine-tune here: PruneScope trains 2 epoch(s)" in code and "lr 0.005" in code and "T=4" in code
    assert "Schedule agp in 3 steps" in code
    assert code.index("Fine-tune here") < code.index("prune.remove(")  # masks attached while training
    wb = _bench(benches, "lenet5-mnist")
    assert count_params(run_snippet(code, load(wb.model_id))) == count_params(
        wb.compress(Recipe(PruneSpec(U, "l1", "global", 0.5))).float_model
    )


def test_every_recipe_shape_generates_valid_python():
    for kind, criterion, scope, quant, ft in itertools.product(
        ["none", U, S],
        CRITERIA,
        ["layer", "global"],
        [
            QuantSpec(),
            QuantSpec(3),
            QuantSpec(16),
            QuantSpec(8, int8=True),
            QuantSpec(8, int8=True, int8_mode="dynamic"),
        ],
        [None, FinetuneSpec()],
    ):
        sparsity = 0.0 if kind == "none" else 0.5
        recipe = Recipe(PruneSpec(kind, criterion, scope, sparsity, skip=("first", "conv2")), quant, ft)
        for recovery in ("none", "bn", "reconstruct"):
            _valid_short_python(recipe.with_recovery(recovery))


def _valid_short_python(recipe: Recipe) -> None:
    card = {"accuracy": 0.5, "eval_set": "mnist-test-10k-quick1000", "eval_samples": 1000}
    for model_id, facts in itertools.product(("lenet5-mnist", "resnet20-cifar10", "upload-0"), (None, card)):
        code = recipe_code(recipe, model_id, card=facts)
        ast.parse(code)
        after_docstring = code.split('"""', 2)[2]
        assert max(len(line) for line in after_docstring.splitlines()) <= 120, (recipe.label(), model_id)


@pytest.mark.slow  # one interpreter start
def test_the_downloaded_file_runs_as_a_script(tmp_path):
    path = tmp_path / "prunescope_recipe.py"
    path.write_text(recipe_code(Recipe(PruneSpec(U, "l1", "global", 0.9)), "lenet5-mnist"))
    run = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr
    wb = Workbench("lenet5-mnist")
    total, nonzero = count_params(wb.compress(Recipe(PruneSpec(U, "l1", "global", 0.9))).float_model)
    assert f"parameters (total, non-zero): ({total}, {nonzero})" in run.stdout
