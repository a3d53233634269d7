"""Export's "Recipe as code" panel: the current recipe as a runnable PyTorch file
(``compress_core.files.codegen.recipe_code``) to take back into a training script."""

from __future__ import annotations

import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.files.codegen import recipe_code

from . import cache

FILE_NAME = "prunescope_recipe.py"


def recipe_code_panel(model_id: str, recipe: Recipe) -> None:
    """The snippet (``st.code``) and a download of it as ``prunescope_recipe.py``."""
    wb = cache.workbench(model_id)  # names the layers (uploads too) and gives the input shape
    code = recipe_code(recipe, model_id, model=wb.model, input_shape=wb.spec.input_shape)
    st.subheader("Recipe as code")
    st.caption(
        "The recipe as torch.nn.utils.prune calls (unstructured), torch-pruning calls (structured) and the "
        "matching torch.ao.quantization calls, for your own model in your own training code: "
        "`model = prunescope_recipe(model)`. Simulated steps are marked as such in the code."
    )
    st.download_button(
        f"Download {FILE_NAME}", code, FILE_NAME, mime="text/x-python", icon=":material/download:", width="stretch"
    )
    st.code(code, language="python")
