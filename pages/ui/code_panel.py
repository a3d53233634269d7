"""Export's "Recipe as code" panel: the current recipe as a runnable PyTorch file
(``compress_core.files.codegen.recipe_code``) to take back into a training script."""

from __future__ import annotations

import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.files.codegen import recipe_code

from . import cache, state

FILE_NAME = "prunescope_recipe.py"


def recipe_code_panel(model_id: str, recipe: Recipe) -> None:
    """The snippet (``st.code``) and a download of it as ``prunescope_recipe.py``, with the accuracy of the card
    (the page's measured result, when cached) written into it for ``python prunescope_recipe.py`` to compare."""
    wb = cache.workbench(model_id)  # names the layers (uploads too) and gives the input shape
    card = cache.peek(model_id, recipe, state.eval_mode())
    code = recipe_code(recipe, model_id, model=wb.model, input_shape=wb.spec.input_shape, card=card)
    st.subheader("Recipe as code")
    st.caption(
        "The recipe as torch.nn.utils.prune calls (unstructured), torch-pruning calls (structured), the "
        "recipe's recovery (PruneScope's own step, a compress_core call) and the matching torch.ao.quantization "
        "calls, for your own model in your own training code: `model = prunescope_recipe(model)`. Simulated "
        "steps are marked as such in the code; `python prunescope_recipe.py` evaluates it on the card's images "
        "and prints its accuracy next to the card's."
    )
    st.download_button(
        f"Download {FILE_NAME}", code, FILE_NAME, mime="text/x-python", icon=":material/download:", width="stretch"
    )
    st.code(code, language="python")
