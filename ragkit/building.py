"""Creating and replacing index folders safely: first builds, rebuilds and their work folders.

A first build writes straight into the index folder under its write lock, so
whatever it committed survives Ctrl-C or a crash and the next run resumes.  A
rebuild of an existing index is built in a work folder in
``<home>/.ragkit-work/`` (hidden, and not an index itself, so ``ragkit indexes
list`` never shows it), locked while it is built, and swapped in when complete
(:func:`replacement`), so the old index stays usable until then.  A work
folder left behind by a killed process is removed by the next ingest
(:func:`clean_stale_work`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import __version__
from .backend import embedding_prefixes
from .chunking import ChunkerSettings
from .errors import IndexBusyError
from .store import DATABASE, LOCKFILE, MANIFEST, Store

__all__ = ["WORK_DIR", "clean_stale_work", "new_manifest", "remove_index_files", "replacement",
           "swap_folders", "writer_lock"]

#: The folder, next to the indexes, where rebuilds are assembled.
WORK_DIR = ".ragkit-work"


def new_manifest(model: str, dimension: int, chunker: ChunkerSettings) -> dict[str, Any]:
    """The manifest of a new index embedded with ``model`` into ``dimension``-dim vectors."""
    query_prefix, document_prefix = embedding_prefixes(model)
    return {
        "embed_model": model,
        "dimension": dimension,
        "chunker": chunker.as_dict(),
        "query_prefix": query_prefix,
        "document_prefix": document_prefix,
        "ragkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@contextlib.contextmanager
def replacement(
    index_path: Path, manifest: dict[str, Any], swap_in: Callable[[Path], None]
) -> Iterator[Store]:
    """A new, empty store in a locked work folder, for the index at ``index_path``.

    If the block fails, the work folder is deleted; if it succeeds, the store is
    closed and the folder handed to ``swap_in`` (still locked).  The caller holds
    the index's own write lock.
    """
    building = work_dir(index_path) / f"{index_path.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    with writer_lock(building):
        new = Store.create(building, manifest)
        try:
            yield new
        except BaseException:
            new.close()
            shutil.rmtree(building, ignore_errors=True)
            remove_empty(building.parent)
            raise
        new.close()
        swap_in(building)


def swap_folders(building: Path, index_path: Path) -> None:
    """Put the freshly built folder at ``index_path`` and delete the old index.

    On Linux the two folders trade places in one ``renameat2(RENAME_EXCHANGE)``,
    so there is no moment without an index at ``index_path``; elsewhere two
    renames leave a window of microseconds.
    """
    if not exchange(building, index_path):
        old = building.with_name(building.name.replace(".building-", ".old-"))
        os.rename(index_path, old)
        os.rename(building, index_path)
        building = old
    shutil.rmtree(building, ignore_errors=True)  # now the old index
    remove_empty(building.parent)


def work_dir(index_path: Path) -> Path:
    """Where rebuilds of the indexes next to ``index_path`` are assembled."""
    return index_path.parent / WORK_DIR


@contextlib.contextmanager
def writer_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s single-writer lock (the one :meth:`Store.lock` takes), or raise busy."""
    fh = open(folder / LOCKFILE, "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(str(folder)) from None
        yield
    finally:
        fh.close()  # closing releases the lock


def clean_stale_work(index_path: Path) -> None:
    """Remove work folders left by killed rebuilds (their lock is free once the owner is dead)."""
    work = work_dir(index_path)
    if not work.is_dir():
        return
    for folder in work.glob(f"{index_path.name}.*-*"):
        try:
            with writer_lock(folder):
                shutil.rmtree(folder, ignore_errors=True)
        except (IndexBusyError, OSError):
            continue  # a live rebuild, or already gone
    remove_empty(work)


def remove_empty(folder: Path) -> None:
    """Remove ``folder`` if it is empty."""
    with contextlib.suppress(OSError):
        folder.rmdir()


def remove_index_files(path: Path) -> None:
    """Delete an index folder ragkit created, keeping anything else a user put there."""
    for name in (MANIFEST, DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", LOCKFILE):
        with contextlib.suppress(OSError):
            (path / name).unlink()
    for cache in path.glob("vectors-*.faiss"):
        with contextlib.suppress(OSError):
            cache.unlink()
    remove_empty(path)


_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two folders (Linux ``renameat2``); False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: the kernel or filesystem says no
        return False
    raise OSError(errno, os.strerror(errno), str(b))
