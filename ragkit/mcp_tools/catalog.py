"""The indexes an MCP server serves: opened once, known by name, used one call at a time.

An MCP host calls tools from worker threads, possibly several at once, while
an :class:`~ragkit.index.Index` (its SQLite connection, its FAISS cache, the
embedded engine) expects one caller at a time: each index has its own lock.
A server runs for hours, so an index rebuilt meanwhile (``ingest --rebuild``
swaps in a new folder) is reopened on its next use instead of serving the
old, deleted copy.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IndexError_, IndexNotFoundError, RagkitError, UsageError
from ..home import index_home
from ..index import Index

__all__ = ["Catalog", "IndexInfo", "chat_model_ready"]

Opener = Callable[[str | Path], Index]


@dataclass(frozen=True)
class IndexInfo:
    """What one served index holds."""

    name: str
    path: str
    documents: int
    chunks: int
    embed_model: str


class _Served:
    """One open index, its lock, and the folder identity it was opened from."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.lock = threading.Lock()
        self.folder = _folder_id(index.path)


class Catalog:
    """The served indexes, by name; :meth:`use` hands one out under its lock."""

    def __init__(self, indexes: Sequence[Index], reopen: Opener | None = None) -> None:
        if not indexes:
            raise UsageError("no index to serve — pass --index NAME")
        self._served: dict[str, _Served] = {}
        for index in indexes:
            if index.name in self._served:
                raise UsageError(
                    f"two indexes are named '{index.name}' ({self._served[index.name].index.path} "
                    f"and {index.path}) — serve one of them, or rename a folder")
            self._served[index.name] = _Served(index)
        self._reopen = reopen

    @classmethod
    def open(
        cls,
        names: Sequence[str] = (),
        *,
        home: Path | None = None,
        announce: Callable[[str], None] | None = None,
        **options: Any,
    ) -> Catalog:
        """Open the indexes ``names`` (names or paths), or every index in ``home``.

        ``options`` go to :meth:`Index.open` (backend, host, timeout, embed_model).
        """
        def opener(spec: str | Path) -> Index:
            return Index.open(spec, home=home, announce=announce, **options)

        opened: list[Index] = []
        try:
            for spec in names or _every_index(home or index_home(), announce):
                opened.append(opener(spec))
            return cls(opened, reopen=opener)
        except BaseException:
            for index in opened:
                index.close()
            raise

    @property
    def names(self) -> list[str]:
        """The served indexes' names, in the order given."""
        return list(self._served)

    def pick(self, name: str | None) -> list[str]:
        """The names a call concerns: ``name`` alone, or every index when it is None."""
        if name is None:
            return self.names
        if name not in self._served:
            raise UsageError(f"unknown index '{name}' — use one of: {', '.join(self.names)}")
        return [name]

    @contextlib.contextmanager
    def use(self, name: str) -> Iterator[Index]:
        """The index ``name``, held for this caller alone (reopened if it was rebuilt)."""
        served = self._served[self.pick(name)[0]]
        with served.lock:
            folder = _folder_id(served.index.path)
            if folder != served.folder and self._reopen is not None:
                self._swap(served, folder)
            yield served.index

    def _swap(self, served: _Served, folder: tuple[int, int] | None) -> None:
        """Reopen a rebuilt (or deleted) index; a deleted one raises IndexNotFoundError."""
        assert self._reopen is not None
        path = served.index.path
        if folder is None:
            raise IndexNotFoundError(served.index.name, str(path.parent))
        fresh = self._reopen(path)
        served.index.close()
        served.index, served.folder = fresh, folder

    def info(self, name: str) -> IndexInfo:
        """Name, path, file and chunk counts, and embedding model of index ``name``."""
        with self.use(name) as index:
            return IndexInfo(index.name, str(index.path), len(index.files()), len(index),
                             index.embed_model)

    def close(self) -> None:
        """Close every index."""
        for served in self._served.values():
            with served.lock:
                served.index.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _every_index(home: Path, announce: Callable[[str], None] | None) -> list[Path]:
    """The index folders in ``home``; damaged ones are skipped with a word on stderr."""
    found: list[Path] = []
    folders = sorted(p for p in home.glob("*") if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        try:
            Index.open(folder).close()
        except IndexNotFoundError:
            continue  # not an index
        except RagkitError as exc:
            if announce:
                announce(f"skipping index '{folder.name}': {exc}")
            continue
        found.append(folder)
    if not found:
        raise IndexError_(f"no index in {home} — create one with `ragkit ingest PATH`, "
                          "or pass --index NAME_OR_PATH")
    return found


def _folder_id(path: Path) -> tuple[int, int] | None:
    """The folder's (device, inode): a rebuild swaps in another folder; None when gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def chat_model_ready(model: str, *, backend: str | None = None, host: str | None = None,
                     timeout: float = 300.0) -> bool:
    """Whether a backend can run the chat ``model`` right now (a quick probe)."""
    from ..backends.chooser import BackendChooser

    try:
        return BackendChooser(backend, host=host, timeout=timeout).for_model(model) \
            .has_model(model)
    except RagkitError:
        return False
