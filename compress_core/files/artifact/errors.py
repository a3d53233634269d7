"""What a bad artefact raises, and the checked field access every part of the reader uses.

Everything read from a file is untrusted: ``field`` and ``shape`` check a header value's type (and a
shape's rank and sizes) before anything is allocated, and raise ``ArtifactError`` saying where.
"""

from __future__ import annotations

MAX_DIM = 2**31  # no stored dimension reaches this
MAX_RANK = 8


class ArtifactError(ValueError):
    """A file that is not a valid PruneScope artefact (the message says what and which file)."""


def field(d: object, key: str, kind: type | tuple, where: str):
    """``d[key]`` if ``d`` is a dict and the value is a ``kind`` (never a bool for ``int``)."""
    value = d.get(key) if isinstance(d, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(f"{where}: field {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def shape(rec: dict, where: str) -> tuple[int, ...]:
    """A record's ``shape``: at most 8 non-negative ints, each below 2**31."""
    dims = field(rec, "shape", list, where)
    if len(dims) > MAX_RANK or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d < MAX_DIM for d in dims
    ):
        raise ArtifactError(f"{where}: bad shape {dims!r}")
    return tuple(dims)
