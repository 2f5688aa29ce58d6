"""Creating, replacing and deleting index folders safely, touching only ragkit's own files.

An index appears whole or not at all.  A first build is assembled in a work
folder, ``.ragkit-work/<name>.first-build`` next to the index, and moved into
place by one ``rename`` at its first commit: from then on it writes in place,
so whatever it committed survives Ctrl-C or a crash and the next run resumes,
while a run killed before that leaves no index behind.  A rebuild of an
existing index is built in ``.ragkit-work/<name>.building-<pid>`` and swapped
in when complete (:func:`replacement`), so the old index stays usable until
then.  Work folders are hidden (``ragkit indexes list`` never shows them),
locked while in use, and removed by the next ingest when their process died
(:func:`clean_stale_work`).

ragkit only ever deletes the files it writes (:func:`~ragkit.store.layout.owned_file`):
anything else found in an index folder is kept, and moved along when a rebuild
swaps the folder.  A symbolic link to an index folder stays a link: the work
folder is made next to its target, whose contents are replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..chunking.units import ChunkerSettings
from ..errors import IndexBusyError, NothingIndexedError
from ..models import embedding_prefixes
from ..version import __version__
from .folders import (
    check_new_folder,
    real_folder,
    remove_empty,
    remove_folder,
    remove_index_files,
    writable,
    writer_lock,
)
from .layout import LOCKFILE, owned_file
from .local import Store
from .tables import not_writable

if TYPE_CHECKING:
    from ..ingest.reports import IngestReport

__all__ = ["WORK_DIR", "clean_stale_work", "delete_index", "first_build", "new_manifest",
           "nothing_indexed", "replacement", "swap_folders"]

log = logging.getLogger("ragkit")

#: The folder, next to the indexes, where new indexes and rebuilds are assembled.
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
def first_build(index_path: Path, manifest: dict[str, Any]) -> Iterator[Store | None]:
    """A new store that becomes the index at ``index_path`` at its first commit of a file.

    Yields None if another process created the index meanwhile (open it
    instead).  If the block fails, or ends before anything was committed,
    nothing is left at ``index_path``.
    """
    target = real_folder(index_path)
    building = work_dir(target) / f"{target.name}.first-build"  # one name: rivals share its lock
    with contextlib.ExitStack() as held:
        with writable(target.parent):
            building.mkdir(parents=True, exist_ok=True)
            held.enter_context(writer_lock(building, index_path))
        held.callback(remove_empty, building.parent)
        store = _start(building, target, manifest)
        if store is None:  # another process created the index meanwhile
            remove_folder(building)
            yield None
            return
        with _published_at_first_commit(store, target):
            yield store


def _start(building: Path, target: Path, manifest: dict[str, Any]) -> Store | None:
    """The new store in ``building`` (whose lock the caller holds), or None if ``target`` exists."""
    try:
        with writable(target.parent):
            if Store.exists(target):
                return None
            check_new_folder(target)
            _remove_leftovers(target)
            remove_index_files(building, keep=LOCKFILE)  # a killed build's; its lock is ours
            return Store.create(building, manifest)
    except BaseException:
        remove_folder(building)
        raise


@contextlib.contextmanager
def _published_at_first_commit(store: Store, target: Path) -> Iterator[None]:
    """Move ``store`` to ``target`` at its first commit; if that never happens, delete it."""
    building = store.root
    store.after_commit = lambda: _publish(store, target)
    try:
        yield
    finally:
        store.after_commit = None
        if store.root == building:  # failed, or ended before committing anything
            store.close()
            remove_folder(building)


def _publish(store: Store, target: Path) -> None:
    """Move a first build into place once it holds a file (only the first time)."""
    if store.root != target and store.count() > 0:
        with writable(target):
            store.move_to(target)
        store.after_commit = None


def _remove_leftovers(folder: Path) -> None:
    """Remove ragkit's files from a folder with no manifest (an older ragkit's killed build)."""
    if folder.is_dir() and not Store.exists(folder) and os.listdir(folder):
        with writer_lock(folder, folder):
            remove_index_files(folder)


@contextlib.contextmanager
def replacement(
    index_path: Path, manifest: dict[str, Any], swap_in: Callable[[Path], None]
) -> Iterator[Store]:
    """A new, empty store in a locked work folder, for the index at ``index_path``.

    If the block fails, the work folder is deleted; if it succeeds, the store is
    closed and the folder handed to ``swap_in`` (still locked).  The caller holds
    the index's own write lock.
    """
    target = real_folder(index_path)
    for folder in (target, target.parent):  # a swap renames the index folder itself
        if not os.access(folder, os.W_OK):
            raise not_writable(folder, "permission denied")
    building = work_dir(target) / f"{target.name}.building-{os.getpid()}"
    with writable(target.parent):
        remove_folder(building)
        building.mkdir(parents=True)
    with writer_lock(building, index_path):
        new = Store.create(building, manifest)
        try:
            yield new
            new.close()
            with writable(target):
                swap_in(building)
        except BaseException:
            new.close()
            remove_folder(building)
            remove_empty(building.parent)
            raise


def swap_folders(building: Path, index_path: Path) -> None:
    """Put the freshly built folder in place of the index and delete the old index.

    On Linux the two folders trade places in one ``renameat2(RENAME_EXCHANGE)``,
    so there is no moment without an index; elsewhere two renames leave a window
    of microseconds.  What the user kept in the old folder moves to the new one.
    """
    target = real_folder(index_path)
    if not exchange(building, target):
        old = building.with_name(building.name.replace(".building-", ".old-"))
        os.rename(target, old)
        os.rename(building, target)
        building = old
    _move_foreign(building, target)  # `building` is now the old index
    remove_folder(building)
    remove_empty(building.parent)


def _move_foreign(old: Path, new: Path) -> None:
    """Move what is not ragkit's from the old index folder to the new one."""
    for name in sorted(os.listdir(old)):
        if owned_file(name) and not (old / name).is_dir():
            continue
        if os.path.lexists(new / name):
            log.warning("kept %s: %s already holds that name", old / name, new)
            continue
        os.rename(old / name, new / name)


def delete_index(index_path: Path) -> list[str]:
    """Delete the index at ``index_path``: ragkit's files only; returns the names kept.

    Takes the writer lock (an ingest in progress makes it :class:`IndexBusyError`).
    A link to an index folder is removed with the folder, if that ends up empty.
    """
    target = real_folder(index_path)
    with writable(target), writer_lock(target, index_path):
        clean_stale_work(target)
        kept = remove_index_files(target)
    if not kept and index_path.is_symlink():
        with writable(index_path.parent):
            index_path.unlink()
    return kept


def nothing_indexed(report: IngestReport, paths: list[Path], outcome: str) -> NothingIndexedError:
    """The error of an ingest that left no file in the index; ``outcome`` says what became of it."""
    where = str(paths[0]) + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
    found = (f"{len(report.skipped)} skipped, {len(report.failed)} failed"
             if report.skipped or report.failed else "no files found")
    return NothingIndexedError(
        f"no files were indexed from {where} ({found}) — {outcome}; ragkit reads text, "
        "markdown, HTML, PDF and source files", report)


def work_dir(folder: Path) -> Path:
    """Where new indexes and rebuilds of the indexes next to ``folder`` are assembled."""
    return folder.parent / WORK_DIR


def clean_stale_work(index_path: Path) -> None:
    """Clear work folders left by killed builds (their lock is free once the owner is dead).

    A user's file found there (a rebuild killed mid-swap) goes back to the index folder.
    """
    target = real_folder(index_path)
    work = work_dir(target)
    if not work.is_dir():
        return
    own = re.compile(re.escape(target.name) + r"\.(first-build|building-\d+|old-\d+)")
    for folder in [f for f in work.iterdir() if own.fullmatch(f.name)]:  # not idx.v2's
        try:
            with writer_lock(folder):
                if target.is_dir():
                    _move_foreign(folder, target)
                remove_folder(folder)
        except (IndexBusyError, OSError):
            continue  # a live build, or already gone
    remove_empty(work)


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
