"""The index manifest: what an index was built with, checked against one schema.

``manifest.json`` is the one file ragkit trusts to say how to read an index:
the embedding model and its vector size, the chunker settings and the
prefixes put before queries and documents; optionally the relevance threshold
that ``ragkit eval --calibrate`` measured for this index.  A hand-edited or damaged manifest
must stop a command with one line, never with a crash deep in FAISS or NumPy
(a dimension of ``"abc"`` or ``-1``, or one so large that a zero vector takes
terabytes), so every manifest read or written goes through
:func:`check_manifest`, the only place its fields are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..chunking.units import ChunkerSettings

__all__ = ["FORMAT_VERSION", "MAX_DIMENSION", "ManifestError", "NewerFormatError",
           "check_manifest", "complete_manifest"]

#: The layout this ragkit reads and writes; a newer one is refused, not guessed at.
FORMAT_VERSION = 1
#: No embedding model comes near this; a bigger "dimension" is damage, not a model.
MAX_DIMENSION = 1 << 16


class ManifestError(ValueError):
    """A manifest field is missing or wrong; the message says which and why."""


class NewerFormatError(ManifestError):
    """The index was written by a newer ragkit, in a layout this one does not know."""

    def __init__(self, version: int) -> None:
        self.version = version
        super().__init__(f"format {version}; this ragkit reads format {FORMAT_VERSION}")


def _whole(value: Any, low: int, high: int | None = None) -> bool:
    """Whether ``value`` is an int (not a bool) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return value >= low and (high is None or value <= high)


def _format_version(value: Any) -> str | None:
    if not _whole(value, 1):
        return "must be a positive whole number"
    if value > FORMAT_VERSION:
        raise NewerFormatError(value)
    return None


def _embed_model(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a model name"


def _dimension(value: Any) -> str | None:
    if _whole(value, 1, MAX_DIMENSION):
        return None
    return f"must be a whole number from 1 to {MAX_DIMENSION}"


def _chunker(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object with size and overlap"
    size, overlap = value.get("size"), value.get("overlap")
    if not (_whole(size, 1) and _whole(overlap, 0)) or overlap >= size:  # type: ignore[operator]
        return "must have a positive whole size and an overlap from 0 to below the size"
    if value.get("unit", ChunkerSettings.unit) != ChunkerSettings.unit:
        return f"unit must be {ChunkerSettings.unit}"
    return None


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _threshold(value: Any) -> str | None:
    finite = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        -1e6 < value < 1e6)
    return None if finite else "must be a number"


def _stemmer(value: Any) -> str | None:
    return None if value == "porter" else 'must be "porter"'


#: Optional fields (older indexes lack them) -> their check, when present.
_OPTIONAL: dict[str, Callable[[Any], str | None]] = {
    # Set by `ragkit eval --calibrate`: `ask` refuses below it for this index.
    "relevance_threshold": _threshold,
    # Milvus collections whose keyword terms ragkit stems (ragkit.store.stemming).
    "keyword_terms": _stemmer,
}

#: Field -> its check (None: fine; else what is wrong).  Every field is required.
_SCHEMA: dict[str, Callable[[Any], str | None]] = {
    "format_version": _format_version,  # first: a newer layout is refused before the rest
    "embed_model": _embed_model,
    "dimension": _dimension,
    "chunker": _chunker,
    "query_prefix": _text,
    "document_prefix": _text,
}


def check_manifest(data: Any) -> dict[str, Any]:
    """``data`` itself if it is a manifest this ragkit can use, else :class:`ManifestError`.

    >>> check_manifest({"format_version": 1, "embed_model": "m", "dimension": "abc"})
    Traceback (most recent call last):
    ...
    ragkit.store.manifest.ManifestError: dimension must be a whole number from 1 to 65536, got 'abc'
    """
    if not isinstance(data, dict):
        raise ManifestError("not a JSON object")
    for field, check in {**_SCHEMA, **_OPTIONAL}.items():
        if field not in data:
            if field in _OPTIONAL:
                continue
            raise ManifestError(f"{field} is missing")
        problem = check(data[field])
        if problem:
            shown = repr(data[field])
            shown = shown if len(shown) <= 40 else shown[:39] + "…"
            raise ManifestError(f"{field} {problem}, got {shown}")
    return data


def complete_manifest(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the defaults of a new index for what they leave out, checked.

    Only ``embed_model`` and ``dimension`` have no default.
    """
    defaults = {"format_version": FORMAT_VERSION, "chunker": ChunkerSettings().as_dict(),
                "query_prefix": "", "document_prefix": ""}
    return check_manifest({**defaults, **fields})
