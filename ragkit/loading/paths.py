r"""A file's identity in an index, and how file names are shown.

An index knows a file by its *key*: the real path of the folder (or file) the
user named, every symlink and ``..`` in it resolved, followed by the file's
path below that folder as the walk found it.  ``docs``, ``x/../docs`` and a
link to ``docs`` therefore give each file one key, while a file that
``--follow-symlinks`` reached through a link leading out of the folder keeps
its place in the folder (and leaves the index when the link goes).  What the
user typed is kept for display (:class:`Found`).

File names need not be valid UTF-8 on POSIX systems.  Python holds the bytes
that are not as lone surrogates (``surrogateescape``, as :func:`os.listdir`
returns them), which is lossless, so keys stay ``str`` in memory (SQLite gets
``os.fsencode`` bytes, see :mod:`ragkit.store.tables`) and :func:`shown` turns the
bytes into ``\xNN`` for output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Found", "Keys", "renamed_keys", "shown", "stale_keys"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def shown(name: str) -> str:
    r"""``name`` ready to print or put in JSON: undecodable bytes of a file name as ``\xNN``.

    >>> shown(os.fsdecode(b"caf\xe9.md"))
    'caf\\xe9.md'
    >>> shown("café.md")
    'café.md'
    """
    return _SURROGATE.sub(_escape, name) if _SURROGATE.search(name) else name


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    # surrogateescape maps byte 0xNN (>= 0x80) to U+DCNN; other lone surrogates keep their code.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


@dataclass(frozen=True)
class Found:
    """A file the walk found: ``path`` as the user spelled it (to read and show), and its key."""

    path: Path
    key: str


class Keys:
    """Keys of the files under some roots (files and folders, as the user spelled them)."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        pairs = [(Path(r), Path(os.path.realpath(r))) for r in roots]
        # Longest first: a root inside another one gives its files their most resolved key.
        self._roots = sorted(pairs, key=lambda pair: len(pair[0].parts), reverse=True)
        self._real = [str(real) for _, real in pairs]

    def key(self, path: Path) -> str:
        """The key of ``path``, a path the walk of the roots produced."""
        for root, real in self._roots:
            if path == root:
                return str(real)
            if path.is_relative_to(root):
                return str(real / path.relative_to(root))
        return os.path.realpath(path)

    def covers(self, key: str) -> bool:
        """Whether ``key`` is one of the (resolved) roots or lies below one."""
        return any(_below(key, root) for root in self._real)


def _below(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it (by their spelling)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Reals:
    """Where keys really are, every link resolved; folders are resolved once per pass."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        folder, name = os.path.split(key)
        if folder not in self._folders:
            self._folders[folder] = os.path.realpath(folder)
        real = os.path.join(self._folders[folder], name)
        return os.path.realpath(real) if os.path.islink(real) else real


def renamed_keys(known: Iterable[str], present: set[str]) -> dict[str, str]:
    """Old keys to rename ``{old: new}``: indexed files the walk found under another key.

    An index built before keys were resolved holds ``x/../docs/a.md`` or
    ``link/a.md``; renaming its record to the new key, while that key has no
    record yet, spares embedding an unchanged file again.  (Other copies are
    dropped by :func:`stale_keys`.)
    """
    known = list(known)
    taken = set(known)
    real = _Reals()
    renames: dict[str, str] = {}
    for key in known:
        if key in present:
            continue
        new = real(key)
        if new != key and new in present and new not in taken:
            renames[key] = new
            taken.add(new)
    return renames


def stale_keys(
    known: Iterable[str], keys: Keys, present: set[str], skipped: Iterable[str],
    failed: Iterable[str],
) -> list[str]:
    """Indexed keys to drop after a walk of ``keys``' roots.

    ``present``: keys of the files the walk found; ``skipped``: keys of what it
    left out on purpose (a folder stands for everything below it, such as a
    link out of the folder that is not followed); ``failed``: keys of files
    that could not be read.  A key is dropped when its file was left out or
    failed, is gone, or is indexed again under another key (a copy from before
    keys were resolved).  A folder that cannot be read drops nothing: its files
    may be back next time.
    """
    out, bad = set(skipped), set(failed)
    real = _Reals()
    return [key for key in known if _stale(key, keys, present, out, bad, real)]


def _stale(
    key: str, keys: Keys, present: set[str], out: set[str], bad: set[str], real: _Reals
) -> bool:
    """See :func:`stale_keys`."""
    if key in bad or (out and (key in out or any(str(p) in out for p in Path(key).parents))):
        return True  # left out this time: not in the index either
    if key in present:
        return False
    new = real(key)
    if new != key and new in present:
        return True  # indexed under its new key too
    return (keys.covers(key) or keys.covers(new)) and not os.path.exists(key)
