"""Reading an upload's bytes safely: size limits, format sniffing, zip-bomb checks, and the two
tensor readers that never run code (safetensors, and ``torch.load(weights_only=True)``)."""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from pathlib import Path

import torch

from compress_core.files.uploads.errors import PICKLE_REFUSED, UploadError

MAX_UPLOAD_BYTES = 200 * 2**20  # refuse bigger uploads before reading them
MAX_ZIP_ENTRIES = 20_000
MAX_ZIP_RATIO = 10  # torch writes uncompressed (stored) zips; a high ratio means a crafted archive
PRUNE_HOOK = b"torch.nn.utils.prune"  # pickled pruning hooks name their module in the pickle's text


def human_size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def read_bytes(data: bytes | str | os.PathLike, name: str, max_bytes: int) -> bytes:
    """The upload's bytes (from memory or a path), refusing empty files and files over ``max_bytes``."""
    limit = f"{human_size(max_bytes)} upload limit"
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        path = Path(data)
        if not path.is_file():
            raise UploadError(f"{path} is not a file")
        if (size := path.stat().st_size) > max_bytes:
            raise UploadError(f"{name} is {human_size(size)}, over the {limit}")
        raw = path.read_bytes()
    if not raw:
        raise UploadError(f"{name} is empty (0 bytes): the upload did not complete, or the wrong file was chosen")
    if len(raw) > max_bytes:
        raise UploadError(f"{name} is {human_size(len(raw))}, over the {limit}")
    return raw


def sniff(raw: bytes) -> str:
    """``zip`` | ``safetensors`` | ``pickle`` | ``unknown``, from the first bytes."""
    if raw[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(raw) >= 9 and raw[8:9] == b"{" and int.from_bytes(raw[:8], "little") < 100 * 2**20:
        return "safetensors"
    if len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5:
        return "pickle"
    return "unknown"


def not_a_model(name: str, raw: bytes, expected: str) -> UploadError:
    return UploadError(
        f"{name} is not an accepted format: expected {expected}, but it starts with {raw[:8]!r}, "
        f"which is not a zip archive, safetensors header or torch.save file"
    )


def open_zip(raw: bytes, name: str, max_bytes: int) -> zipfile.ZipFile:
    """The archive, after checking its table of contents against zip bombs and truncation."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise UploadError(
            f"{name} is truncated or corrupt: it starts like a zip archive (torch.save, TorchScript or "
            "torch.export) but its table of contents is missing; upload the complete file"
        ) from None
    infos = zf.infolist()
    unpacked = sum(i.file_size for i in infos)
    if len(infos) > MAX_ZIP_ENTRIES or unpacked > max_bytes or unpacked > MAX_ZIP_RATIO * len(raw) + 2**20:
        raise UploadError(
            f"{name} expands to {unpacked / 2**20:.1f} MiB in {len(infos)} entries from "
            f"{len(raw) / 2**20:.2f} MiB: refused as a possible zip bomb (PyTorch writes uncompressed "
            "archives); upload the file as torch.save / torch.jit.save / torch.export.save wrote it"
        )
    if any(i.header_offset + i.compress_size > len(raw) for i in infos):
        raise UploadError(f"{name} is truncated or corrupt: its entries run past the end of the file")
    return zf


def members(zf: zipfile.ZipFile) -> dict[str, str]:
    """Entry names without the archive's root folder (torch names it after the saved file)."""
    return {n.split("/", 1)[1] if "/" in n else n: n for n in zf.namelist()}


def load_safetensors(raw: bytes, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        return load(raw)
    except Exception as exc:  # SafetensorError has no stable base class to catch
        raise UploadError(f"{name} is not a valid safetensors file ({exc}); it may be truncated or corrupt") from None


def load_torch_save(raw: bytes, name: str) -> object:
    """``torch.load(weights_only=True)``: tensors and plain containers only, every other global refused."""
    import pickle

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it needs {found.group(1)})" if found else ""
        hint = (
            (
                "; it carries torch.nn.utils.prune hooks: save model.state_dict() instead (its weight_orig and "
                "weight_mask are folded on upload) or call prune.remove first"
            )
            if PRUNE_HOOK in raw
            else ""
        )
        raise UploadError(
            f"{name} is not an accepted format: it is a pickle of Python objects, not only tensors"
            f"{what}, e.g. a whole model saved with torch.save(model){hint}. {PICKLE_REFUSED}"
        ) from None
    except Exception as exc:
        raise UploadError(
            f"{name} could not be read as a torch.save file ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}); "
            "it is probably truncated or corrupt"
        ) from None
