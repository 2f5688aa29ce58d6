"""What an index home holds: the indexes in it, each with its model and size.

``ragkit indexes list`` prints :func:`list_indexes`; ``ragkit indexes info``
prints :meth:`ragkit.Index.info`, which takes its size from :func:`folder_size`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import IndexCorruptError, IndexVersionError
from .store.local import Store, read_manifest

__all__ = ["IndexEntry", "folder_size", "list_indexes"]


@dataclass(frozen=True)
class IndexEntry:
    """One index of a home: its name, embedding model and size, or why it cannot be read."""

    name: str
    path: Path
    #: The embedding model it was built with; None when ``state`` is not ``ok``.
    embed_model: str | None
    #: ``ok``, ``newer`` (made by a newer ragkit) or ``damaged`` (an unreadable manifest).
    state: str
    size: int


def list_indexes(home: Path) -> list[IndexEntry]:
    """The indexes directly in ``home``, sorted by name (none when it does not exist)."""
    found = sorted(p for p in home.glob("*") if Store.exists(p))
    return [_entry(path) for path in found]


def _entry(path: Path) -> IndexEntry:
    model, state = None, "ok"
    try:
        model = str(read_manifest(path)["embed_model"])
    except IndexVersionError:
        state = "newer"
    except IndexCorruptError:
        state = "damaged"
    return IndexEntry(path.name, path, model, state, folder_size(path))


def folder_size(path: Path) -> int:
    """Bytes in the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
