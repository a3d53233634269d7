"""The catalogue: which models the picker offers, and what the app may do with each.

Two kinds of model id:
- zoo ids (``compress_core.models.REGISTRY``): their facts come from the registry; their weights may be
  missing on this machine (``usable``).
- upload ids ``upload-<sha8>[-<arch>][-<dataset>]``: a user's file, read once per distinct file
  (``compress_core.files.uploads.load_upload``, cached by the sha256 of its bytes) and held in a
  process-wide, bounded registry (``MAX_REGISTERED`` entries, least recently used first out). Each
  session lists only the uploads it made itself (the upload box keeps their ids), so users never see
  each other's files.

Everything here is about model ids; no widget lives here (the sidebar box is ``upload_box``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st

from compress_core.base.lru import LRU
from compress_core.base.paths import downloads_allowed
from compress_core.bench.workbench import Workbench
from compress_core.files import uploads as core
from compress_core.models import REGISTRY, ModelSpec, available, get_spec

PREFIX = "upload-"
MAX_UPLOAD_BYTES = core.MAX_UPLOAD_BYTES
MAX_REGISTERED = 4  # uploaded models kept in memory per process (each holds its weights)
# Display names of the datasets; an upload matched to no zoo architecture is evaluated on one of these.
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def dataset_name(dataset: str) -> str:
    """ "CIFAR-10" for "cifar10"; unknown keys as they are."""
    return DATASET_NAMES.get(dataset, dataset)


def dataset_choice(dataset: str) -> str:
    """The dataset with the input shape it lends an opaque upload, e.g. "MNIST (1×28×28)"."""
    shape = "×".join(str(n) for n in core.dataset_base(dataset).input_shape)
    return f"{dataset_name(dataset)} ({shape})"


@dataclass(frozen=True)
class Entry:
    """One registered upload: the loaded file, the spec it is evaluated under, and its picker label."""

    model_id: str
    uploaded: core.Uploaded
    spec: ModelSpec
    label: str
    prunable: bool


@st.cache_resource(max_entries=1, show_spinner=False)
def registry() -> LRU[Entry]:
    """Upload id -> Entry, shared by every session of this process (each session lists only its own)."""
    return LRU(MAX_REGISTERED)


# -- what the rest of the app asks about a model id ---------------------------------------------
def is_upload(model_id: str) -> bool:
    return model_id.startswith(PREFIX)


def lookup(model_id: str) -> Entry | None:
    return registry().get(model_id) if is_upload(model_id) else None


def known(model_id: str) -> bool:
    """A zoo model, or an upload still held by this process."""
    return model_id in REGISTRY or lookup(model_id) is not None


def choices(session_uploads: list[str]) -> list[str]:
    """The model picker's options: the zoo models available here, this session's uploads the process still
    holds, then the zoo models that need something first (their labels say what: ``label``)."""
    ready = [m for m in REGISTRY if available(m)]
    uploads = [m for m in session_uploads if lookup(m) is not None]
    return [*ready, *uploads, *(m for m in REGISTRY if m not in ready)]


def _entry(model_id: str) -> Entry:
    entry = lookup(model_id)
    if entry is None:
        raise ValueError(
            f"the uploaded model {model_id} is no longer loaded (the server keeps the last "
            f"{MAX_REGISTERED} uploads): upload the file again in the sidebar"
        )
    return entry


def spec(model_id: str) -> ModelSpec:
    """``get_spec`` for zoo ids and upload ids alike."""
    return _entry(model_id).spec if is_upload(model_id) else get_spec(model_id)


def usable(model_id: str) -> bool:
    """Weights on this machine: always for a registered upload."""
    return lookup(model_id) is not None if is_upload(model_id) else available(model_id)


def label(model_id: str) -> str:
    """What the model picker shows for this id."""
    if is_upload(model_id):
        entry = lookup(model_id)
        return entry.label if entry else f"Uploaded model {model_id} (upload again)"
    model_spec = get_spec(model_id)
    return model_spec.name if available(model_id) else f"{model_spec.name.split(' (')[0]} · {needs(model_spec)}"


def needs(model_spec: ModelSpec) -> str:
    """What a zoo model whose weights are not here needs, in the few words the picker has room for (the
    sidebar's message says how to get them once the model is picked, About lists them all)."""
    if downloads_allowed() and bool(model_spec.weights_url):
        return "downloads on use"
    return "needs weights" if model_spec.dataset == "imagefolder" else "needs data"


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
    """A Workbench over a zoo model, or over a registered upload's own module and spec."""
    if not is_upload(model_id):
        return Workbench(model_id)
    entry = _entry(model_id)
    return Workbench(model_id, model=entry.uploaded.model, spec=entry.spec, artifact_id=entry.uploaded.arch)


# -- loading and registering uploads ------------------------------------------------------------
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


def _describe(uploaded: core.Uploaded, model_spec: ModelSpec) -> str:
    if uploaded.arch in REGISTRY:
        how = f"{get_spec(uploaded.arch).name} architecture"
    else:
        how = uploaded.arch or f"{uploaded.kind} graph, {dataset_choice(model_spec.dataset)}"
    return f"Uploaded: {uploaded.filename} ({how})"


def register(data: bytes, filename: str, arch: str | None = None, dataset: str | None = None) -> Entry:
    """Load (once per file) and register an upload; returns its registry entry.

    Raises ``UploadError`` for a refused file and ``ValueError`` when an opaque graph has no dataset."""
    sha, uploaded = load(data, filename, arch)
    if not needs_dataset(uploaded):
        dataset = None  # a zoo architecture brings its own dataset
    elif dataset is None:
        raise ValueError(
            f"{uploaded.filename} matches no zoo architecture: choose the dataset it was trained on "
            f"({', '.join(map(dataset_choice, DATASET_NAMES))}) so it can be evaluated"
        )
    model_id = upload_id(sha, arch, dataset)
    if (entry := registry().get(model_id)) is not None:
        return entry
    model_spec = core.spec_for_upload(uploaded, model_id, dataset)
    entry = Entry(model_id, uploaded, model_spec, _describe(uploaded, model_spec), core.prunable(uploaded))
    registry().put(entry.model_id, entry)
    return entry
