"""Explore: move the sliders and watch accuracy, parameters, file size and latency move."""

import streamlit as st

from pages.ui import actions, errors, explain, recipe_controls, routes, runtime_panel, state, widgets
from pages.ui import explore_panels as panels
from pages.ui import forgets_panel as forgets

routes.require_router()
st.title("Explore")
with errors.guard("Explore", reset=state.reset_recipe):
    model_id, mode = state.model_id(), state.eval_mode()
    panels.ensure_loaded(model_id, mode)
    levels = widgets.recovery_levels(model_id)
    state.ensure_widgets(levels, widgets.default_recovery(model_id))
    free = explain.free_layers(model_id, state.current_recipe())
    knob = recipe_controls.recipe_controls(None if free is None else len(free), levels)
    recipe = state.recipe_from_widgets(state.current_recipe())
    state.set_recipe(recipe)
    explain.layer_ratios_notice(recipe, explain.free_layers(model_id, recipe))
    res = panels.measure(model_id, recipe, mode)
    top, pick = st.columns([4, 1.3], vertical_alignment="bottom")
    with top:
        widgets.recipe_summary(recipe, model_id, res)
    with pick:
        runtime_panel.selector(model_id)
    widgets.metric_cards(res, latency=lambda: runtime_panel.latency_card(model_id, recipe, mode, res))
    oneshot_slot = st.empty()  # the one-shot accuracy's progress, measured last (panels.complete_oneshot)
    explain.knob_note(knob, model_id, recipe, res)
    explain.speed_note(res)
    widgets.honesty_notes(res)
    actions.actions(model_id, recipe, mode, res)
    left, right = st.columns(2, gap="medium")
    with left:
        panels.accuracy_curve(model_id, recipe, mode, res)
    with right:
        panels.size_chart(model_id, recipe, mode, res)
    panels.latency_and_layers(model_id, recipe, runtime_panel.shown(model_id, recipe, mode, res))
    runtime_panel.charts(model_id, recipe, mode)
    panels.complete_oneshot(model_id, recipe, mode, res, oneshot_slot)
    forgets.panel(model_id, recipe, mode, res)  # what the compressed model forgets; computed only when open
