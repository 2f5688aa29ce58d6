"""Index folders: their names and paths, what ragkit may write there, and its lock.

ragkit only ever deletes the files it writes in an index folder
(:func:`~ragkit.store.layout.owned_file`), so a folder that already holds other
things never becomes an index, and documents and their index are kept apart:
an index inside a folder being indexed is left out of the walk, and a folder
inside an index (or the index folder itself) is refused as documents.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import IndexBusyError, IndexFolderError, UsageError
from .layout import LOCKFILE, MANIFEST, owned_file
from .tables import not_writable

__all__ = ["NAME_MAX", "check_new_folder", "check_new_name", "check_path_length", "expand_user",
           "index_inside", "lock_index", "real_folder", "remove_empty",
           "remove_folder", "remove_index_files", "writable", "writer_lock"]

#: The longest file name most file systems take, in bytes.
NAME_MAX = 255


def real_folder(index_path: Path) -> Path:
    """The folder that holds the index's files: ``index_path`` with links resolved."""
    return Path(os.path.realpath(index_path))


def expand_user(text: str) -> Path:
    """``text`` as a path with ``~`` and ``~user`` expanded; an unknown user is a UsageError."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # no such user, or no home folder to expand to
        user = text.split(os.sep, 1)[0]
        raise UsageError(f"cannot expand {user!r}: no such user or home folder — write the "
                         "path out in full") from None


def check_path_length(path: Path) -> None:
    """Refuse a path with a name longer than file systems take (a UsageError, not a crash)."""
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise UsageError(f"index name {part[:20]!r}… is too long ({len(part)} characters; "
                             f"a folder name takes at most {NAME_MAX} bytes) — choose a "
                             "shorter one")


def check_new_name(path: Path) -> None:
    """Refuse a new index whose name would break a listing (a newline, a control character)."""
    if not path.name.isprintable():
        raise UsageError(f"index name {path.name!r} contains control or invisible characters "
                         "— choose a name of letters, digits and punctuation")


def check_new_folder(folder: Path) -> None:
    """Refuse to create an index in ``folder`` if it is a file or holds anything of the user's."""
    if not os.path.lexists(folder):
        return
    if not folder.is_dir():
        raise IndexFolderError(str(folder), f"{folder} is a file, not an index folder",
                               "pass --index a name, or the path of a new folder")
    foreign = sorted(n for n in os.listdir(folder) if not owned_file(n))
    if foreign:
        raise IndexFolderError(
            str(folder), f"{folder} is not empty and is not a ragkit index (it holds "
            f"{_some(foreign)})", "ragkit creates an index only in a new or empty folder: "
            "pass --index a new name or path")


def _some(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def index_inside(index_path: Path, roots: list[Path]) -> list[Path]:
    """The index folder, if it is inside one of the folders ``roots`` being indexed.

    The walk leaves it out.  Documents inside the index folder, or the index
    folder itself given as documents, are refused: a rebuild replaces that folder.
    """
    index = real_folder(index_path)
    inside = []
    for root in roots:
        real = real_folder(root)
        if real == index or index in real.parents:
            where = "is the index folder" if real == index else "is inside the index folder"
            raise UsageError(f"{root} {where} {index_path} — keep documents and index apart: "
                             "choose another --index (a name puts it under RAGKIT_HOME)")
        if real in index.parents:
            inside = [index]
    return inside


@contextlib.contextmanager
def writable(folder: Path) -> Iterator[None]:
    """Turn a failure to write ``folder`` (permissions, read-only disk) into one line."""
    try:
        yield
    except OSError as exc:
        raise not_writable(folder, exc.strerror or str(exc)) from exc


@contextlib.contextmanager
def writer_lock(folder: Path, name: Path | None = None) -> Iterator[None]:
    """Hold ``folder``'s single-writer lock (the one :meth:`Store.lock` takes), or raise busy.

    ``name``: the index to name in the busy message (default: ``folder``).
    """
    fh = open(folder / LOCKFILE, "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(str(name or folder)) from None
        yield
    finally:
        fh.close()  # closing releases the lock


def lock_index(index_path: Path) -> contextlib.ExitStack:
    """The index's writer lock, taken (a folder that cannot be written is one line); close it."""
    held = contextlib.ExitStack()
    with writable(real_folder(index_path)):
        held.enter_context(writer_lock(index_path, index_path))
    return held


def remove_folder(folder: Path) -> None:
    """Best effort :func:`remove_index_files` for work folders (a missing one is fine)."""
    with contextlib.suppress(OSError):
        remove_index_files(folder)


def remove_empty(folder: Path) -> None:
    """Remove ``folder`` if it is empty."""
    with contextlib.suppress(OSError):
        folder.rmdir()


def remove_index_files(folder: Path, keep: str = "") -> list[str]:
    """Delete the files ragkit wrote in ``folder``, and the folder if nothing else is left.

    The manifest goes first, so an interrupted deletion leaves no half index.
    Returns the names of what was kept (``keep`` is, too); errors other than
    "already gone" are raised.
    """
    names = sorted(os.listdir(folder), key=lambda n: (n != MANIFEST, n))
    kept = []
    for name in names:
        if not owned_file(name) or name == keep or (folder / name).is_dir():
            kept.append(name)
            continue
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    if not kept:
        folder.rmdir()
    return kept
