"""Explore's "What changed" panel: what the compressed model forgets against the dense one on the same test
images (``bench.forgets``): the flips both ways, the classes that lose most with their 95 % intervals, a
gallery of the flipped images and the confusion matrix's change.

Lazy: the expander tracks its state (``on_change="rerun"``) and its body runs only while it is open, so a
slider move with the panel closed costs nothing; open, its numbers are cached per (model, recipe, mode) and
the body is a fragment, so its own controls (the full test set, the gallery's filter) rerun only the panel.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core.base.recipe import Recipe
from compress_core.bench.forgets import RIGHT_TO_WRONG, WRONG_TO_RIGHT
from compress_core.present import plots

from . import cache, catalogue, errors, forgets_across
from . import forgets_cache as fc

W_OPEN = "w_forgets_open"  # the expander (tracked: its body runs only while open)
W_FULL = "w_forgets_full"  # per-class figures on the full test set instead of the quick subset
W_SHOW = "w_forgets_show"  # which flips the gallery shows
GALLERY = 12
GALLERY_COLUMNS = 6
SHOW = {
    "right → wrong": (RIGHT_TO_WRONG,),
    "wrong → right": (WRONG_TO_RIGHT,),
    "both": (RIGHT_TO_WRONG, WRONG_TO_RIGHT),
}


def panel(model_id: str, recipe: Recipe, mode: str, res: dict) -> None:
    """The expander; its body is computed only while it is open."""
    box = st.expander(
        "What changed: the images and classes the compressed model forgets",
        key=W_OPEN,
        on_change="rerun",
        icon=":material/difference:",
    )
    if box.open:
        with box:
            body(model_id, recipe.to_json(), mode, res)


@st.fragment
def body(model_id: str, recipe_json: str, mode: str, res: dict) -> None:
    """The panel's contents; a fragment, so its own guard: on its own reruns the page's guard is not around it."""
    with errors.guard("What changed"):
        _contents(model_id, recipe_json, mode, res)


def _contents(model_id: str, recipe_json: str, mode: str, res: dict) -> None:
    if not fc.labelled(model_id, mode):
        st.info("These images have no labels: only agreement with the dense model can be measured (the cards).")
        return
    recipe = Recipe.from_json(recipe_json)
    quick = _forgets(model_id, recipe, mode, res)
    per_class = _per_class_count(quick)
    used = mode
    full_n = fc.full_size(model_id)
    if mode == "quick" and full_n > quick["n"]:
        st.caption(
            f"Per-class figures on {quick['n']:,} images: ~{per_class:,} per class, so a change of a few points in "
            f"one class can be noise (its interval says so). Switch to the full {full_n:,} for ~"
            f"{round(full_n / max(1, len(quick['per_class']))):,} per class."
        )
        if st.toggle(f"Per-class figures on the full test set ({full_n:,} images)", key=W_FULL):
            used = "full"
    shown = quick if used == mode else _forgets(model_id, recipe, used)
    flips(shown, used, _per_class_count(shown))
    names = fc.class_names(model_id)
    classes(shown, names)
    gallery(model_id, used, shown, names)
    confusion(shown, names)
    forgets_across.across(model_id, recipe, mode, names)


def _forgets(model_id: str, recipe: Recipe, mode: str, res: dict | None = None) -> dict:
    """The Forgets, at hand or computed under a progress bar: each batch it reports is a point where the user's
    next move takes over (the pass is abandoned, nothing half-kept)."""
    hit = fc.known(model_id, recipe, mode, res)
    if hit is not None:
        return hit
    n = len(cache.workbench(model_id).eval_data(mode))
    label = f"Comparing the compressed and the dense {catalogue.spec(model_id).name} on {n:,} test images"
    slot = st.empty()
    bar = slot.progress(0.0, text=label)

    def heard(fraction: float, message: str) -> None:
        bar.progress(min(1.0, max(0.0, fraction)), text=f"{label} — {message}")

    out = fc.forgets_of(model_id, recipe, mode, res, progress=heard)
    slot.empty()
    return out


def _per_class_count(f: dict) -> int:
    sizes = [c["n"] for c in f["per_class"] if c["n"]]
    return round(sum(sizes) / len(sizes)) if sizes else 0


def flips(f: dict, mode: str, per_class: int) -> None:
    st.markdown(
        f"**On {f['n']:,} test images** ({f['eval_set']}, {per_class:,} per class"
        f"{', the full test set' if mode == 'full' else ''})"
    )
    a, b, c, d = st.columns(4)
    a.metric(
        "Right → wrong",
        f"{f['flips_right_to_wrong']:,}",
        help=f"{f['flip_rate_right_to_wrong']:.2%} of the images: the dense model was right, the compressed is not",
    )
    b.metric(
        "Wrong → right",
        f"{f['flips_wrong_to_right']:,}",
        help=f"{f['flip_rate_wrong_to_right']:.2%} of the images: the compressed model fixes a dense mistake",
    )
    c.metric("Agreement with dense", f"{f['agreement']:.1%}", help="images whose top-1 class is unchanged")
    d.metric("Mean KL (dense ‖ compressed)", f"{f['mean_kl']:.3f} nats", help="how far the softmax outputs moved")


def class_frame(f: dict, names: tuple[str, ...]) -> pd.DataFrame:
    """One row per class, the largest loss first."""
    rows = [{**c, "class": fc.name_of(names, int(c["class"]))} for c in f["per_class"] if c["n"]]
    columns = ["class", "n", "dense_accuracy", "accuracy", "change_pp", "ci_low_pp", "ci_high_pp", "significant"]
    return pd.DataFrame(rows, columns=columns).sort_values(["change_pp", "ci_high_pp"], kind="stable")


def classes(f: dict, names: tuple[str, ...]) -> None:
    df = class_frame(f, names)
    st.markdown("**Classes that lose most**")
    st.plotly_chart(plots.class_change(df), width="stretch", key="forgets_classes", config={"displaylogo": False})
    hurt = df[df["class"].isin({fc.name_of(names, k) for k in _hurt(f)})]
    per, overall = _per_class_count(f), 100 * (f["accuracy"] - f["dense_accuracy"])
    if hurt.empty:
        st.caption(
            f"No class loses beyond noise: every class's 95 % interval ({per:,} images each, paired with the dense "
            f"model's answers on the same images) includes the overall change of {overall:+.1f} pp. Grey bars are "
            "within noise."
        )
        return
    listed = ", ".join(
        f"{_named(r['class'])} {r['change_pp']:+.1f} pp (95 % CI {r['ci_low_pp']:+.1f} to {r['ci_high_pp']:+.1f})"
        for _, r in hurt.iterrows()
    )
    st.caption(
        f"Hurt beyond the overall change of {overall:+.1f} pp (the class's 95 % interval excludes it; {per:,} "
        f"images per class): {listed}. Grey bars are within noise of the overall change."
    )


def _hurt(f: dict) -> list[int]:
    """The classes significantly hurt (``Forgets.classes_hurt``): significant and hit more than the whole."""
    return [c["class"] for c in f["per_class"] if c["significant"] and c["change_vs_overall_pp"] < 0]


def _named(name: str) -> str:
    return f"class {name}" if name.isdigit() else name


def gallery(model_id: str, mode: str, f: dict, names: tuple[str, ...]) -> None:
    st.markdown("**Flipped images**")
    if not f["flipped"]:
        st.caption("No image changed its top-1 class: the compressed model answers exactly as the dense one.")
        return
    show = st.radio("Show", list(SHOW), horizontal=True, key=W_SHOW, label_visibility="collapsed")
    picked = [x for x in f["flipped"] if x["kind"] in SHOW[show]]
    if not picked:
        st.caption(f"No image flipped {show}.")
        return
    first = picked[:GALLERY]
    images = fc.pixels(model_id, mode, tuple(int(x["index"]) for x in first))
    cols = st.columns(GALLERY_COLUMNS)
    for i, x in enumerate(first):
        with cols[i % GALLERY_COLUMNS]:
            if images is not None:
                st.image(images[i], width=96)
            st.caption(_flip_text(x, names))
    st.caption(
        f"{len(first)} of {len(picked):,} shown ({show}), the largest changes in the true class's probability first; "
        "confidences are the top softmax probability of each model; # is the image's position in the evaluated set."
    )


def _flip_text(x: dict, names: tuple[str, ...]) -> str:
    true, dense, now = (fc.name_of(names, int(x[k])) for k in ("label", "dense_label", "label_compressed"))
    return (
        f"#{x['index']} · true **{true}**  \ndense {dense} {x['dense_confidence']:.0%}  \n"
        f"→ **{now}** {x['confidence']:.0%}"
    )


def confusion_frame(f: dict, names: tuple[str, ...]) -> pd.DataFrame:
    rows = [
        {"true": fc.name_of(names, t), "predicted": fc.name_of(names, p), "change": int(v)}
        for t, row in enumerate(f["confusion_diff"])
        for p, v in enumerate(row)
    ]
    return pd.DataFrame(rows, columns=["true", "predicted", "change"])


def confusion(f: dict, names: tuple[str, ...]) -> None:
    st.plotly_chart(
        plots.confusion_change(confusion_frame(f, names)),
        width="stretch",
        key="forgets_confusion",
        config={"displaylogo": False},
    )
    st.caption(
        "Images per cell, compressed minus dense (rows: the true class, columns: the predicted one). Blue on the "
        "diagonal: fewer right answers; red off it: the classes they went to."
    )
