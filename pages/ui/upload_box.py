"""The sidebar's "Upload your model" box and its callbacks.

A file goes to ``catalogue.register`` (read once per distinct file, kept in the process-wide registry);
on success the new upload id joins this session's list (``state.UPLOADED_IDS``) and becomes the
selected model. A refused file becomes one ``st.error`` with the loader's message; the selected model
does not change. Graphs that match no zoo architecture first ask which dataset they classify.
"""

from __future__ import annotations

import streamlit as st

from compress_core.models import DEFAULT_MODEL, REGISTRY, get_spec

from . import catalogue, state

AUTO = "auto-detect"
FILE_TYPES = ("safetensors", "pt", "pth", "bin", "ckpt", "pt2")


def session_ids() -> list[str]:
    """This session's uploads that the process still holds (the model picker lists them)."""
    ids = [m for m in st.session_state.get(state.UPLOADED_IDS, []) if catalogue.lookup(m) is not None]
    st.session_state[state.UPLOADED_IDS] = ids
    return ids


def drop_if_evicted() -> None:
    """Before the model picker renders: an upload the process no longer holds falls back to the default."""
    current = st.session_state.get(state.MODEL)
    if current is not None and catalogue.is_upload(current) and catalogue.lookup(current) is None:
        state.notice(
            f"The uploaded model {current} is no longer in memory (the server keeps the last "
            f"{catalogue.MAX_REGISTERED} uploads); showing {DEFAULT_MODEL}. Upload the file again to use it."
        )
        st.session_state[state.MODEL] = DEFAULT_MODEL
        state.on_model_change()


def _chosen_arch() -> str | None:
    arch = st.session_state.get(state.UPLOAD_ARCH, AUTO)
    return None if arch == AUTO else arch


def _on_change() -> None:
    """Callback of the upload widgets (runs before the script, so it may select the new model)."""
    ss = st.session_state
    file = ss.get(state.UPLOAD_FILE)
    ss[state.UPLOAD_ERROR] = None
    if file is None:
        return
    arch = _chosen_arch()
    try:
        _, uploaded = catalogue.load(file.getvalue(), file.name, arch)
        if catalogue.needs_dataset(uploaded) and ss.get(state.UPLOAD_DATASET) is None:
            return  # the box now asks for the dataset; its callback comes back here
        entry = catalogue.register(file.getvalue(), file.name, arch, ss.get(state.UPLOAD_DATASET))
    except ValueError as exc:  # UploadError included: the loader's message says what is wrong
        ss[state.UPLOAD_ERROR] = str(exc)
        return
    ss[state.UPLOADED_IDS] = [*[m for m in ss.get(state.UPLOADED_IDS, []) if m != entry.model_id], entry.model_id]
    if ss.get(state.MODEL) != entry.model_id:
        ss[state.MODEL] = entry.model_id
        state.on_model_change()


def upload_box() -> None:
    """'Upload your model' expander: file, architecture, and the dataset when the file cannot tell."""
    ss = st.session_state
    with st.expander(
        "Upload your model",
        icon=":material/upload_file:",
        expanded=bool(ss.get(state.UPLOAD_ERROR)) or ss.get(state.UPLOAD_FILE) is not None,
    ):
        # No ``type=`` filter: the browser would refuse e.g. a .pkl with a bare red chip and leave the previous
        # file's message on screen. Every file reaches the loader, whose one message says what to upload instead.
        st.file_uploader(
            "Model file",
            key=state.UPLOAD_FILE,
            on_change=_on_change,
            max_upload_size=max(1, catalogue.MAX_UPLOAD_BYTES // 2**20),
            help=f"A state_dict ({', '.join('.' + t for t in FILE_TYPES[:5])} saved with safetensors "
            "or torch.save), a TorchScript archive or a torch.export .pt2. Pickled Python objects "
            "are refused with the reason.",
        )
        st.selectbox(
            "Architecture",
            [AUTO, *REGISTRY],
            key=state.UPLOAD_ARCH,
            on_change=_on_change,
            format_func=lambda a: "Auto-detect from the weights" if a == AUTO else get_spec(a).name,
            help="Which zoo architecture a state_dict belongs to; auto-detect matches names and shapes.",
        )
        file = ss.get(state.UPLOAD_FILE)
        if file is not None and not ss.get(state.UPLOAD_ERROR):
            _dataset_select(file)
        if ss.get(state.UPLOAD_ERROR):
            st.error(ss[state.UPLOAD_ERROR], icon=":material/block:")
        elif (entry := catalogue.lookup(ss.get(state.MODEL, ""))) is not None:
            st.caption(
                " · ".join([f"{entry.uploaded.kind}, {entry.uploaded.size_bytes:,} bytes", *entry.uploaded.notes])
            )


def _dataset_select(file) -> None:
    try:
        _, uploaded = catalogue.load(file.getvalue(), file.name, _chosen_arch())
    except ValueError:
        return
    if not catalogue.needs_dataset(uploaded):
        return
    st.selectbox(
        "Dataset",
        list(catalogue.DATASET_NAMES),
        index=None,
        key=state.UPLOAD_DATASET,
        on_change=_on_change,
        format_func=catalogue.dataset_choice,
        placeholder="Which data was it trained on?",
        help="This graph matches no zoo architecture, so PruneScope cannot tell what it classifies. "
        "It is evaluated as uploaded; it cannot be pruned or quantized.",
    )
