"""Export offers the current recipe as a runnable PyTorch snippet (issue 15), for the default recipe, with the
accuracy of the card it was measured with written into it ("One story on every page")."""

from __future__ import annotations

from compress_core.base.recipe import Recipe
from compress_core.files.codegen import recipe_code
from pages.ui import cache

from .conftest import texts, url_recipe


def test_export_shows_the_default_recipe_as_code_and_offers_the_file(app):
    app.switch_page("pages/export.py").run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    recipe = Recipe.from_dict(url_recipe(app))
    [snippet] = [c.value for c in app.code if "def prunescope_recipe(" in c.value]
    card = cache.peek("lenet5-mnist", recipe, "quick")  # the result the page measured: the card's numbers
    assert card is not None
    assert snippet.rstrip() == recipe_code(recipe, "lenet5-mnist", input_shape=(1, 28, 28), card=card).rstrip()
    assert f"CARD_ACCURACY: float | None = {card['accuracy']!r}" in snippet  # python prunescope_recipe.py prints it
    assert "torch.nn.utils.prune" in snippet or "torch_pruning" in snippet or "no pruning" in snippet
    [code_block] = [c for c in app.code if "def prunescope_recipe(" in c.value]
    assert code_block.language == "python"
    assert "Download prunescope_recipe.py" in [b.proto.label for b in app.get("download_button")]
    namespace: dict = {"__name__": "prunescope_recipe"}
    exec(compile(snippet, "prunescope_recipe.py", "exec"), namespace)  # the shown code is valid Python
    assert callable(namespace["prunescope_recipe"])


def test_a_pruned_recipe_becomes_torch_nn_utils_prune_calls(app):
    app.slider(key="w_sparsity_pct").set_value(50).run()
    app.switch_page("pages/export.py").run()
    assert not app.exception and not app.error, texts(app.error)
    [snippet] = [c.value for c in app.code if "def prunescope_recipe(" in c.value]
    assert "prune.global_unstructured(" in snippet and "amount=0.5" in snippet
    assert 'prune.remove(m, "weight")' in snippet
