"""The knob translated: what the sparsity slider did to this recipe, layers it left nearly empty, why
int8 or structured pruning did not make this model faster, and what per-layer ratios leave it to move.
The words come from ``compress_core.bench.layers``; this module only places them."""

from __future__ import annotations

import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.bench import layers as inspect
from compress_core.present.headline import headline

from . import cache, catalogue


def free_layers(model_id: str, recipe: Recipe) -> list[str] | None:
    """The layers the sparsity slider moves while per-layer ratios are set; None when none are set."""
    if not recipe.prune.layer_sparsity or not catalogue.prunable(model_id):
        return None
    return inspect.slider_layers(cache.workbench(model_id).model, recipe.prune)


def layer_ratios_notice(recipe: Recipe, free: list[str] | None) -> None:
    """While per-layer ratios (from Sensitivity) are set: say what the slider still moves, with a button
    that clears them."""
    box = st.container()  # always there, so the elements below keep their places
    if not recipe.prune.layer_sparsity:
        return
    from . import state

    n = len(recipe.prune.layer_sparsity)
    if free:
        names = ", ".join(free[:6]) + (" …" if len(free) > 6 else "")
        moves = f"the sparsity slider moves only the other {len(free)} layer(s): {names}."
    else:
        moves = "every prunable layer has its own ratio, so the sparsity slider has nothing left to move and is off."
    c1, c2 = box.columns([4, 1], vertical_alignment="center")
    c1.info(f"Per-layer ratios are set for {n} layer(s) (from Sensitivity); {moves}", icon=":material/layers:")
    c2.button("Clear per-layer ratios", key=state.B_CLEAR_RATIOS, on_click=state.clear_layer_ratios, width="stretch")


def _knob_text(recipe: Recipe, k: dict[str, float]) -> str:
    p = recipe.prune
    if not p.active:
        return (
            "Nothing removed yet. Unstructured pruning zeroes single weights; structured removes whole "
            "channels, and with them a share of the next layer's inputs."
        )
    if p.kind == "structured":
        knob = "per-layer ratios" if p.layer_sparsity else f"the {p.sparsity:.0%} setting"
        return (
            f"**This recipe:** {knob} removed **{k['channels']:.0%} of channels, {k['params']:.0%} of parameters "
            f"and {k['macs']:.0%} of MACs.** A layer's removed output channels are also the next "
            "layer's missing inputs, so parameters fall about with the square of the channels kept."
        )
    knob = "per-layer ratios" if p.layer_sparsity else f"{p.sparsity:.0%} of the prunable weights"
    return (
        f"**This recipe:** {knob} zeroed → **{k['params']:.0%} of all parameters removed, 0 % of MACs**: dense "
        "kernels still multiply the zeros, so only a sparse file is smaller, not the compute."
    )


def knob_note(slot, model_id: str, recipe: Recipe, res: dict) -> None:
    """Fill the slot under the sparsity slider (``recipe_controls.recipe_controls``)."""
    table = cache.layer_frame(model_id, recipe.to_json())
    with slot.container():
        st.caption(
            _knob_text(recipe, inspect.knob_summary(table, res)),
            help=(
                "Channels: output channels or features of every Conv2d/Linear layer but the classifier. "
                "Parameters: non-zero weights and biases of the whole model. MACs: multiply-accumulates per sample."
            ),
        )
        thin = inspect.bottlenecks(table)
        if thin and recipe.prune.kind == "structured":
            layer, kept, dense = thin[0]
            more = f" (and {len(thin) - 1} more)" if len(thin) > 1 else ""
            hint = (
                " Global scope ranks channels across layers; **Per layer** scope removes the same fraction from each."
                if recipe.prune.scope == "global"
                else ""
            )
            st.warning(
                f"{layer} kept {kept} of {dense} channels{more}: a choke point that caps accuracy.{hint}",
                icon=":material/warning:",
            )


def speed_note(res: dict) -> None:
    """Why this int8 or structured recipe is not faster, when it is not."""
    note = inspect.speed_note(res)
    box = st.container()  # always there, so the elements below keep their places
    if note:  # the numbers it explains are this result's: say on which runtime, threads and batch
        box.caption(f":material/speed: **Why not faster on {headline(res).where()}:** {note}")
