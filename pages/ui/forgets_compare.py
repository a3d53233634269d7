"""Compare's flips: what each pinned recipe forgets against its own dense model, side by side (the same
``Forgets`` Explore's "What changed" panel shows, from ``forgets_cache``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compress_core.base.recipe import Recipe

from . import cache, views
from . import forgets_cache as fc


def _worse(f: dict, names: tuple[str, ...]) -> str:
    hurt = sorted((c for c in f["per_class"] if c["significant"] and c["change_pp"] < 0), key=lambda c: c["change_pp"])
    if not hurt:
        return "none beyond noise"
    shown = ", ".join(f"{fc.name_of(names, int(c['class']))} {c['change_pp']:+.0f} pp" for c in hurt[:3])
    return shown + (f" (+{len(hurt) - 3} more)" if len(hurt) > 3 else "")


def flips_frame(pins: list[dict], mode: str) -> pd.DataFrame:
    """Measures as rows, one column per pin named as in the table above (a pin that cannot be compared is
    warned about there)."""
    columns: dict[str, list[str]] = {}
    for i, pin in enumerate(pins, start=1):
        model, recipe = pin["model"], Recipe.from_json(pin["recipe"])
        try:
            if not fc.labelled(model, mode):
                continue
            f = fc.forgets_of(model, recipe, mode, cache.peek(model, recipe, mode))
        except ValueError:
            continue
        per = round(f["n"] / max(1, len(f["per_class"])))
        columns[views.pin_name(i, pin)] = [
            f"{f['flips_right_to_wrong']:,} ({f['flip_rate_right_to_wrong']:.1%})",
            f"{f['flips_wrong_to_right']:,} ({f['flip_rate_wrong_to_right']:.1%})",
            f"{f['agreement']:.1%}",
            _worse(f, fc.class_names(model)),
            f"{f['n']:,} ({per:,} per class)",
        ]
    measures = ["right → wrong", "wrong → right", "agreement with dense", "classes worse (95 % CI)", "test images"]
    return pd.DataFrame({"measure": measures, **columns}) if columns else pd.DataFrame()


def flips(pins: list[dict], mode: str) -> None:
    """Compare's flips table: each pin against its own dense model on the same test images."""
    with st.spinner("Comparing each pin with its dense model, image by image…"):
        df = flips_frame(pins, mode)
    if df.empty:
        return
    st.markdown("**What each pin forgets**")
    st.dataframe(
        df, hide_index=True, width="stretch", column_config={"measure": st.column_config.TextColumn("", width="medium")}
    )
    st.caption(
        "Flips against each pin's own dense model on the same test images: right → wrong are images the dense "
        "model got right and the pin does not. A class is listed only when its 95 % interval excludes zero. "
        "Explore's *What changed* panel shows the images themselves."
    )
