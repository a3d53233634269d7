"""Where files live: the data dir (``COMPRESS_DATA_DIR``), the cache dir, and verified downloads.

Nothing here downloads unless ``fetch`` is called with a URL on a connected machine, and every
file that is found or fetched is checked against its sha256. A missing file raises
``MissingFileError`` naming the file, where it was looked for, and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # compress_core/base/paths.py -> the project root
ASSETS_DIR = PROJECT_ROOT / "assets"


class MissingFileError(FileNotFoundError):
    """A weights or data file is not on disk and could not be downloaded."""


def data_dir() -> Path | None:
    """The folder laid out like ``shared/data`` (weights/, cifar10/, mnist/), if one is configured."""
    value = os.environ.get("COMPRESS_DATA_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Per-user cache for downloads, sweep results and artefacts (``COMPRESS_CACHE_DIR`` overrides)."""
    value = os.environ.get("COMPRESS_CACHE_DIR")
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prunescope"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def downloads_allowed() -> bool:
    """Downloads happen only where the user has not switched them off (``PRUNESCOPE_OFFLINE=1``)."""
    return os.environ.get("PRUNESCOPE_OFFLINE", "") not in ("1", "true", "yes")


def locate(
    relpath: str, sha256: str | None, url: str | None = None, opener: Callable[[str], object] | None = None
) -> Path:
    """Find ``relpath`` in the data dir or the cache dir; download it into the cache dir if a URL is known.

    ``opener`` is the function that opens the URL (``urllib.request.urlopen`` by default); tests
    pass one that serves a local file, so the download path is exercised without a network.
    """
    candidates = []
    if (root := data_dir()) is not None:
        candidates.append(root / relpath)
    candidates.append(cache_dir() / relpath)
    for path in candidates:
        if path.is_file():
            if sha256 and sha256_of(path) != sha256:
                raise MissingFileError(
                    f"{path} exists but its sha256 does not match the expected {sha256[:12]}…; "
                    "the file is corrupt or a different version: delete it and fetch it again"
                )
            return path
    where = " or ".join(str(p) for p in candidates)
    if url and downloads_allowed():
        try:
            return fetch(url, candidates[-1], sha256, opener=opener)
        except OSError as exc:
            raise MissingFileError(
                f"{relpath} is not on disk (looked in {where}) and downloading it from {url} failed: {exc}. "
                f"Copy the file there by hand, or set COMPRESS_DATA_DIR to a folder that holds {relpath}"
            ) from None
    hint = f"download it from {url} and " if url else ""
    raise MissingFileError(
        f"{relpath} is missing: looked in {where}. Please {hint}put it at {candidates[-1]}, "
        f"or set COMPRESS_DATA_DIR to a folder laid out like shared/data that holds {relpath}"
    )


def sha256_matches(path: Path, sha256: str | None = None, prefix: str | None = None) -> bool:
    """Whether the file's sha256 is ``sha256`` (or starts with ``prefix``, torch.hub's naming rule)."""
    if not sha256 and not prefix:
        return True
    digest = sha256_of(path)
    return digest == sha256 if sha256 else digest.startswith(prefix or "")


def fetch(
    url: str,
    dest: Path,
    sha256: str | None,
    opener: Callable[[str], Any] | None = None,
    sha256_prefix: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, verifying sha256 (or its prefix) before the
    file appears; a failed download leaves nothing behind. The one downloader of the project."""
    from tqdm.auto import tqdm

    opener = opener or (lambda u: urllib.request.urlopen(u, timeout=60))
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with opener(url) as response, os.fdopen(fd, "wb") as out:
            total = int(getattr(response, "headers", {}).get("Content-Length", 0) or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}") as bar:
                while block := response.read(1 << 16):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        got = digest.hexdigest()
        if (sha256 and got != sha256) or (sha256_prefix and not got.startswith(sha256_prefix)):
            expected = (sha256 or sha256_prefix or "")[:12]
            raise OSError(
                f"sha256 mismatch for {url}: got {got[:12]}…, expected {expected}… "
                "(invalid hash value; the download was discarded)"
            )
        shutil.move(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest
