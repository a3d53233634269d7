"""The "Copy link" button: the address bar already holds the recipe (``state.sync_url``); this copies it.

Streamlit has no clipboard command, so the button is a tiny same-origin frame (``st.iframe``, whose
frames Streamlit allows to write the clipboard). It reads the page's own address at click time, so the link is
exactly the current view; where the clipboard is refused it shows the link to copy by hand.
"""

from __future__ import annotations

import streamlit as st

_ICON = (
    '<svg width="18" height="18" viewBox="0 0 24 24" fill="currentColor" '
    'style="vertical-align:-4px;margin-right:6px"><path d="M3.9 12c0-1.71 1.39-3.1 3.1-3.1h4V7H7'
    "c-2.76 0-5 2.24-5 5s2.24 5 5 5h4v-1.9H7c-1.71 0-3.1-1.39-3.1-3.1zM8 13h8v-2H8v2zm9-6h-4v1.9h4"
    'c1.71 0 3.1 1.39 3.1 3.1s-1.39 3.1-3.1 3.1h-4V17h4c2.76 0 5-2.24 5-5s-2.24-5-5-5z"/></svg>'
)  # Material "link"
_BUTTON = """
<style>
 body{margin:0;font-family:"Source Sans Pro",sans-serif}
 button{width:100%;height:38px;border:1px solid rgba(49,51,63,.2);border-radius:.5rem;background:#fff;
        color:#31333f;font-size:14px;cursor:pointer}
 button:hover{border-color:#2563eb;color:#2563eb}
 input{display:none;width:100%;height:36px;box-sizing:border-box;font-size:12px}
</style>
<button id="copy" title="Copy a link that restores this exact view (model, evaluation, recipe)">ICON Copy link</button>
<input id="link" readonly>
<script>
const button = document.getElementById("copy"), field = document.getElementById("link"), label = button.innerHTML;
button.addEventListener("click", async () => {
  const url = window.parent.location.href;
  try {
    await navigator.clipboard.writeText(url);
    button.textContent = "\\u2713 Link copied";
  } catch (e) {
    button.style.display = "none";
    field.value = url; field.style.display = "block"; field.select();  // the clipboard was refused: copy by hand
    return;
  }
  setTimeout(() => { button.innerHTML = label; }, 2500);
});
</script>
"""


def copy_link_button() -> None:
    st.iframe(_BUTTON.replace("ICON", _ICON), height=40)
