"""Bring your own model in the dashboard: the sidebar upload box and the registry of uploaded models.

An upload is read once per distinct file (``compress_core.uploads.load_upload``, cached by the
sha256 of its bytes) and registered under a model id ``upload-<sha8>`` (plus ``-<arch>`` /
``-<dataset>`` when the user chose them), so every page and cache works on it like on a zoo model.
The registry is process-wide and bounded (``MAX_REGISTERED``); each session's model picker lists
only the uploads made in that session (``state.UPLOADED_IDS``), so users never see each other's files.
A refused file becomes one ``st.error`` with the loader's message; the selected model does not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import streamlit as st

from compress_core import uploads as core
from compress_core.models import DEFAULT_MODEL, REGISTRY, ModelSpec, available, get_spec
from compress_core.pipeline import Workbench

from . import state
from .memo import Memo

PREFIX = "upload-"
AUTO = "auto-detect"
FILE_TYPES = ("safetensors", "pt", "pth", "bin", "ckpt", "pt2")
DATASET_LABELS = {"mnist": "MNIST (1×28×28)", "cifar10": "CIFAR-10 (3×32×32)"}
MAX_UPLOAD_BYTES = core.MAX_UPLOAD_BYTES
MAX_REGISTERED = 4  # uploaded models kept in memory per process (each holds its weights)


@dataclass(frozen=True)
class Entry:
    model_id: str
    uploaded: core.Uploaded
    spec: ModelSpec
    label: str
    prunable: bool


@st.cache_resource(max_entries=1, show_spinner=False)
def registry() -> Memo:
    """Upload id -> Entry, shared by every session of this process (each session lists only its own)."""
    return Memo(MAX_REGISTERED)


# -- what the rest of the app asks about a model id ---------------------------------------------
def is_upload(model_id: str) -> bool:
    return model_id.startswith(PREFIX)


def lookup(model_id: str) -> Entry | None:
    return registry().get(model_id) if is_upload(model_id) else None


def known(model_id: str) -> bool:
    """A zoo model, or an upload still held by this process."""
    return model_id in REGISTRY or lookup(model_id) is not None


def _entry(model_id: str) -> Entry:
    entry = lookup(model_id)
    if entry is None:
        raise ValueError(f"the uploaded model {model_id} is no longer loaded (the server keeps the last "
                         f"{MAX_REGISTERED} uploads): upload the file again in the sidebar")
    return entry


def spec(model_id: str) -> ModelSpec:
    """``get_spec`` for zoo ids and upload ids alike."""
    return _entry(model_id).spec if is_upload(model_id) else get_spec(model_id)


def usable(model_id: str) -> bool:
    """Weights on this machine: always for a registered upload."""
    return lookup(model_id) is not None if is_upload(model_id) else available(model_id)


def label(model_id: str) -> str:
    if is_upload(model_id):
        entry = lookup(model_id)
        return entry.label if entry else f"Uploaded model {model_id} (upload again)"
    name = get_spec(model_id).name
    return name if available(model_id) else f"{name} — weights missing"


def prunable(model_id: str) -> bool:
    entry = lookup(model_id)
    return entry.prunable if entry is not None else True


def artifact_id(model_id: str) -> str | None:
    """The zoo architecture a .psz artefact of this model names, or None when there is none."""
    if not is_upload(model_id):
        return model_id
    arch = _entry(model_id).uploaded.arch
    return arch if arch in REGISTRY else None


def build_workbench(model_id: str) -> Workbench:
    entry = _entry(model_id)
    return Workbench(model_id, model=entry.uploaded.model, spec=entry.spec, artifact_id=entry.uploaded.arch)


# -- loading and registering ----------------------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner="Checking and loading the uploaded model…")
def _load(sha256: str, filename: str, arch: str | None, _data: bytes) -> core.Uploaded:
    return core.load_upload(_data, filename, arch=arch, max_bytes=MAX_UPLOAD_BYTES)


def upload_id(sha256: str, arch: str | None, dataset: str | None) -> str:
    return PREFIX + "-".join([sha256[:8], *(p for p in (arch, dataset) if p)])


def load(data: bytes, filename: str, arch: str | None = None) -> tuple[str, core.Uploaded]:
    """(sha256 of the bytes, the loaded upload); raises ``UploadError``. Cached per file and arch."""
    sha = hashlib.sha256(data).hexdigest()
    return sha, _load(sha, filename, arch, data)


def needs_dataset(uploaded: core.Uploaded) -> bool:
    """An opaque graph matched to no zoo architecture: the user says which data it was trained on."""
    return uploaded.arch is None


def _dataset_spec(dataset: str) -> ModelSpec:
    specs = [s for s in REGISTRY.values() if s.dataset == dataset]
    if not specs:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASET_LABELS)}")
    return specs[0]


def register(data: bytes, filename: str, arch: str | None = None, dataset: str | None = None) -> Entry:
    """Load (once per file) and register an upload; returns its registry entry.

    Raises ``UploadError`` for a refused file and ``ValueError`` when an opaque graph has no dataset."""
    sha, uploaded = load(data, filename, arch)
    if not needs_dataset(uploaded):
        dataset = None  # a zoo architecture brings its own dataset
    model_id = upload_id(sha, arch, dataset)
    if (entry := registry().get(model_id)) is not None:
        return entry
    num_classes = None
    if dataset is not None:
        base = _dataset_spec(dataset)
        num_classes = base.num_classes
        if uploaded.input_shape is None:  # TorchScript does not record its input: the dataset's
            uploaded = dataclasses.replace(uploaded, input_shape=base.input_shape)
    elif needs_dataset(uploaded):
        raise ValueError(f"{uploaded.filename} matches no zoo architecture: choose the dataset it was trained on "
                         f"({', '.join(DATASET_LABELS.values())}) so it can be evaluated")
    model_spec = core.upload_spec(uploaded, model_id, dataset=dataset, num_classes=num_classes)
    how = f"{get_spec(uploaded.arch).name} architecture" if uploaded.arch in REGISTRY else (
        uploaded.arch or f"{uploaded.kind} graph, {DATASET_LABELS.get(model_spec.dataset, model_spec.dataset)}")
    entry = Entry(model_id, uploaded, model_spec, f"Uploaded: {uploaded.filename} ({how})", core.prunable(uploaded))
    registry().put(entry.model_id, entry)
    return entry


# -- the sidebar box --------------------------------------------------------------------------------
def session_ids() -> list[str]:
    """This session's uploads that the process still holds (the model picker lists them)."""
    ids = [m for m in st.session_state.get(state.UPLOADED_IDS, []) if lookup(m) is not None]
    st.session_state[state.UPLOADED_IDS] = ids
    return ids


def drop_if_evicted() -> None:
    """Before the model picker renders: an upload the process no longer holds falls back to the default."""
    current = st.session_state.get(state.MODEL)
    if current is not None and is_upload(current) and lookup(current) is None:
        state.notice(f"The uploaded model {current} is no longer in memory (the server keeps the last "
                     f"{MAX_REGISTERED} uploads); showing {DEFAULT_MODEL}. Upload the file again to use it.")
        st.session_state[state.MODEL] = DEFAULT_MODEL
        state.on_model_change()


def _on_change() -> None:
    """Callback of the upload widgets (runs before the script, so it may select the new model)."""
    ss = st.session_state
    file = ss.get(state.UPLOAD_FILE)
    ss[state.UPLOAD_ERROR] = None
    if file is None:
        return
    arch = None if ss.get(state.UPLOAD_ARCH, AUTO) == AUTO else ss[state.UPLOAD_ARCH]
    try:
        _, uploaded = load(file.getvalue(), file.name, arch)
        if needs_dataset(uploaded) and ss.get(state.UPLOAD_DATASET) is None:
            return  # the box now asks for the dataset; its callback comes back here
        entry = register(file.getvalue(), file.name, arch, ss.get(state.UPLOAD_DATASET))
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
    with st.expander("Upload your model", icon=":material/upload_file:",
                     expanded=bool(ss.get(state.UPLOAD_ERROR)) or ss.get(state.UPLOAD_FILE) is not None):
        st.file_uploader("Model file", type=list(FILE_TYPES), key=state.UPLOAD_FILE, on_change=_on_change,
                         max_upload_size=max(1, MAX_UPLOAD_BYTES // 2**20),
                         help="A state_dict (.safetensors, or .pt/.pth/.bin/.ckpt saved with torch.save), a "
                              "TorchScript archive or a torch.export .pt2. Pickled Python objects are refused.")
        st.selectbox("Architecture", [AUTO, *REGISTRY], key=state.UPLOAD_ARCH, on_change=_on_change,
                     format_func=lambda a: "Auto-detect from the weights" if a == AUTO else get_spec(a).name,
                     help="Which zoo architecture a state_dict belongs to; auto-detect matches names and shapes.")
        file = ss.get(state.UPLOAD_FILE)
        if file is not None and not ss.get(state.UPLOAD_ERROR):
            _dataset_select(file)
        if ss.get(state.UPLOAD_ERROR):
            st.error(ss[state.UPLOAD_ERROR], icon=":material/block:")
        elif (entry := lookup(ss.get(state.MODEL, ""))) is not None:
            st.caption(" · ".join([f"{entry.uploaded.kind}, {entry.uploaded.size_bytes:,} bytes",
                                   *entry.uploaded.notes]))


def _dataset_select(file) -> None:
    arch = None if st.session_state.get(state.UPLOAD_ARCH, AUTO) == AUTO else st.session_state[state.UPLOAD_ARCH]
    try:
        _, uploaded = load(file.getvalue(), file.name, arch)
    except ValueError:
        return
    if not needs_dataset(uploaded):
        return
    st.selectbox("Dataset", list(DATASET_LABELS), index=None, key=state.UPLOAD_DATASET, on_change=_on_change,
                 format_func=DATASET_LABELS.get, placeholder="Which data was it trained on?",
                 help="This graph matches no zoo architecture, so PruneScope cannot tell what it classifies. "
                      "It is evaluated as uploaded; it cannot be pruned or quantized.")
