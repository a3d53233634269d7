"""The command line's models: a zoo model, an uploaded file (``--upload``) or a zoo model evaluated on
the user's image folder (``--images``), as a ``Workbench``; and ``CliError``, an input problem the
command line reports in one line (exit status 2)."""

from __future__ import annotations

import sys
from pathlib import Path


class CliError(Exception):
    """An input problem to report in one line."""


def workbench_for(
    model_id: str, images: str | None, upload: str | None = None, arch: str | None = None, dataset: str | None = None
):
    """The Workbench the command line measures on (the ``--upload`` / ``--images`` options applied)."""
    from compress_core.bench.workbench import Workbench
    from compress_core.models import get_spec

    if upload is None and (arch or dataset):
        raise CliError("--arch and --dataset go with --upload FILE")
    kwargs: dict = {}
    spec = arch_id = None
    if upload is not None:
        model_id, kwargs["model"], spec, arch_id = upload_model(upload, arch, dataset)
        kwargs.update(spec=spec, artifact_id=arch_id)
    if images is not None:
        from compress_core.data.images import load_image_folder
        from compress_core.models.torchvision_zoo import model_ids, preprocessing

        spec = spec or get_spec(model_id)
        size = spec.input_shape[-1]
        zoo_id = arch_id or model_id
        pre = preprocessing(zoo_id) if zoo_id in model_ids() else {"input_size": size, "resize": size}
        kwargs["eval_override"] = load_image_folder(images, **pre)
    return Workbench(model_id, **kwargs)


def upload_model(path: str, arch: str | None, dataset: str | None):
    """(model id ``upload-<sha8>``, model, ModelSpec, zoo architecture or None) for an uploaded file."""
    import hashlib

    from compress_core.files.uploads import load_upload, spec_for_upload

    uploaded = load_upload(path, Path(path).name, arch=arch)  # UploadError is a ValueError: one line
    model_id = "upload-" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]
    if uploaded.arch is None and dataset is None:
        raise CliError(
            f"{Path(path).name} matches no zoo architecture: pass --dataset mnist or --dataset cifar10 "
            "to say what it classifies"
        )
    spec = spec_for_upload(uploaded, model_id, dataset=dataset)
    # what loading found (e.g. torch.nn.utils.prune masks folded, sparsity per layer); stdout stays one JSON object
    print("\n".join(f"upload       {note}" for note in uploaded.notes), file=sys.stderr)
    return model_id, uploaded.model, spec, uploaded.arch
