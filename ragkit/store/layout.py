"""The files of a local index folder: their names, which are ragkit's, atomic writes.

Which files ragkit writes in an index folder (:func:`owned_file`; it deletes only
those), how the manifest is read and checked (:func:`read_manifest`), and how a
file is replaced so readers see the old one or the new one, never half
(:func:`write_atomic`).  The store itself is :mod:`ragkit.store.local`.

Layout of ``indexes/<name>/``::

    manifest.json         embedding model, dimension, chunker settings, ragkit version
    chunks.sqlite         files, chunks (text, metadata and the vector bytes), the FTS5
                          keyword index over them, generation counter
    vectors-<gen>.faiss   FAISS index matching generation <gen>: exact IndexIDMap2(IndexFlatIP)
                          below APPROX_THRESHOLD chunks, IVF (IndexIVFFlat) from there on
    .lock                 held (flock) by the one process writing the index

ragkit deletes only these files (:func:`owned_file`), plus SQLite's ``-wal``/``-shm``
companions and its own half-written temp files: anything else a user puts in an
index folder stays.  Commands that only read (search, ask, info, doctor) open the
database read-only and never write to the folder's files, so a folder they cannot
write is still searchable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import IndexBusyError, IndexCorruptError, IndexVersionError
from ..home import index_home
from .manifest import NewerFormatError, check_manifest
from .tables import _short, not_writable

__all__ = ["DATABASE", "LOCKFILE", "MANIFEST", "index_spec", "owned_file", "read_manifest",
           "release_lock", "take_lock", "write_atomic"]

MANIFEST = "manifest.json"
DATABASE = "chunks.sqlite"
LOCKFILE = ".lock"
#: The names of the files ragkit writes in an index folder (see :func:`owned_file`).
_OWNED = re.compile(
    r"(manifest\.json|chunks\.sqlite(-wal|-shm|-journal)?|\.lock|vectors-\d+\.faiss"
    r"|\.(manifest\.json|vectors-\d+\.faiss)\..+\.tmp)"  # temp files of write_atomic
)


def write_atomic(path: Path, data: bytes | Callable[[str], None]) -> None:
    """Write ``path`` so readers see the old file or the new one, never half.

    ``data`` is the bytes, or a function that writes the file named by its argument.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                data(tmp)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def owned_file(name: str) -> bool:
    """Whether ``name``, in an index folder, is one of the files ragkit writes there.

    >>> [owned_file(n) for n in ("vectors-12.faiss", ".manifest.json.k2j.tmp", "thesis.tex")]
    [True, True, False]
    """
    return _OWNED.fullmatch(name) is not None


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the index at ``root``, checked (:func:`~.manifest.check_manifest`).

    Unreadable or wrong: :class:`IndexCorruptError`; newer: :class:`IndexVersionError`.
    """
    path = root / MANIFEST
    try:
        return check_manifest(json.loads(path.read_text(encoding="utf-8")))
    except NewerFormatError as exc:
        raise IndexVersionError(str(root), str(exc)) from None
    except (OSError, ValueError) as exc:  # ManifestError and JSON errors are ValueErrors
        raise IndexCorruptError(str(path), _short(exc), index_spec(root)) from exc


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` (checked) to the index at ``root``, atomically."""
    check_manifest(manifest)
    write_atomic(root / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")


def index_spec(root: Path) -> str:
    """How to name the index in ``root`` on the command line, for error messages.

    Its bare name when it lives in the index home (``index_home()``), else its path,
    so ``--index SPEC`` in a suggested command reaches this very index.
    """
    try:
        in_home = root.resolve().parent == index_home().resolve()
    except OSError:
        in_home = False
    return root.name if in_home else str(root)



def take_lock(root: Path) -> Any:
    """Take the single-writer lock of the index folder ``root`` (its open file, to release).

    Held by another process: :class:`IndexBusyError` at once.
    """
    try:
        fh = open(root / LOCKFILE, "a+")  # noqa: SIM115 - held until release_lock()
    except OSError as exc:
        raise not_writable(root, exc.strerror or str(exc)) from exc
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise IndexBusyError(str(root)) from None
    return fh


def release_lock(fh: Any) -> None:
    """Release a lock :func:`take_lock` took (None: none was taken)."""
    if fh is not None:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
