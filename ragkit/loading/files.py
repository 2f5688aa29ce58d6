"""Finding the user's documents and reading them into text.

:func:`iter_files` walks files and folders and says why it leaves anything
out; :func:`load_file` turns one file into :class:`Document` objects (one per
page for a PDF).  Files that cannot be read raise
:class:`~ragkit.errors.LoadError` with a one-line reason, never a traceback,
so ingest can report them and go on.  How text is told from binary and
decoded is in :mod:`ragkit.loading.decoding`; the PDF and HTML readers are in
:mod:`ragkit.loading.readers`.

What a file is by its name, and the size policy (which files are streamed in
windows by :func:`open_text`, which are read whole and capped), are in
:mod:`ragkit.loading.kinds`.
"""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import LoadError
from .decoding import _SNIFF, _detect, _looks_binary, decode_text, looks_like_text
from .kinds import (
    _BINARY_KINDS,
    _WHOLE_KINDS,
    _by_content,
    check_size,
    kind_of,
    max_file_bytes,
)
from .paths import shown
from .readers import html_to_text, pdf_pages

__all__ = [
    "Document",
    "Skipped",
    "check_roots",
    "iter_files",
    "load_file",
    "open_text",
]

#: Folders that hold tools' files, not the user's documents (hidden ones are skipped too).
IGNORED_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv"})

#: How many bytes :func:`open_text` decodes at a time.
WINDOW_BYTES = 1 << 20


@dataclass(frozen=True)
class Document:
    """Text of one file, or of one page of a PDF (``page`` is 1-based; None otherwise).

    Structured formats (:mod:`ragkit.loading.formats`) give documents of kind
    ``"markdown"``: their headings become ``#`` lines, so chunks carry the
    heading path; ``page`` is a slide, cell or message number.
    """

    path: Path
    page: int | None
    text: str
    kind: str


@dataclass(frozen=True)
class Skipped:
    """A file or folder the walk left out, with a one-line reason.

    ``unreadable``: ragkit should have read it but the system refused (permission
    denied, I/O error), as opposed to leaving it out on purpose (unsupported
    type, binary, a link out of the folder); ingest reports those as failures.
    """

    path: Path
    reason: str
    unreadable: bool = False


def load_file(path: Path, cap_mb: float | None = None) -> list[Document]:
    """Read one file into documents: one for a text file, one per page with text for a PDF.

    PDF and HTML files over the size cap (:func:`~.kinds.max_file_bytes`) are refused
    without being read; other files are read whole whatever their size
    (:func:`open_text` reads a big one a window at a time).  ``cap_mb``: as for
    :func:`~.kinds.max_file_bytes`.
    """
    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        raise LoadError(str(path), _unsupported(path))
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(str(path), _os_reason(exc)) from None
    check_size(path, size, cap_mb)
    if kind == "table":  # decoded a window at a time: a CSV file may be of any size
        from .sheets import read_csv

        return _documents(path, read_csv(path, open_text(path)))
    data = _read(path, max_file_bytes(kind, cap_mb) if kind in _WHOLE_KINDS else -1)
    if not data.strip():
        raise LoadError(str(path), "empty file")
    if kind == "pdf":
        return [Document(path, n, text, "pdf") for n, text in pdf_pages(path, data)]
    if kind in _WHOLE_KINDS - {"html"}:
        from .formats import read_structured

        return _documents(path, read_structured(path, data, max_file_bytes(kind, cap_mb)))
    if _by_content(path) and not looks_like_text(data[:_SNIFF], complete=len(data) <= _SNIFF):
        raise LoadError(str(path), "binary file")
    try:
        text = decode_text(data)
    except ValueError as exc:
        raise LoadError(str(path), str(exc)) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if kind == "html":
        text = html_to_text(text)
    if not text.strip():
        raise LoadError(str(path), "empty file" if kind != "html" else "no text in the HTML")
    return [Document(path, None, text, kind)]


def _documents(path: Path, parts: list[tuple[int | None, str]]) -> list[Document]:
    """A format reader's parts as documents of markdown text (headings make the heading path)."""
    documents = [Document(path, n, text, "markdown") for n, text in parts if text.strip()]
    if not documents:
        raise LoadError(str(path), f"no text in the {path.suffix.lower()} file")
    return documents


def _unsupported(path: Path) -> str:
    return f"unsupported file type {path.suffix.lower()}"


def _read(path: Path, limit: int) -> bytes:
    """The file's bytes (at most ``limit``, unless -1: a file that grew since it was
    measured is refused, not read whole); OS errors become a LoadError with a short reason."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1 if limit >= 0 else -1)
    except OSError as exc:
        raise LoadError(str(path), _os_reason(exc)) from None
    check_size(path, len(data))
    return data


def open_text(path: Path, *, window: int = 0) -> Iterator[str]:
    """Decode a text-like file a window at a time (``window`` bytes, :data:`WINDOW_BYTES` if 0).

    The pieces join up to the text :func:`load_file` reads (newlines
    normalized), except that the encoding is chosen from the first megabyte.  A
    binary, empty or unreadable file raises :class:`LoadError` here, before
    any text is read; bytes that do not decode become U+FFFD.
    """
    path, window = Path(path), window or WINDOW_BYTES
    try:
        with open(path, "rb") as fh:
            head = fh.read(max(window, WINDOW_BYTES))  # what the encoding is judged on
            complete = not fh.read(1)
    except OSError as exc:
        raise LoadError(str(path), _os_reason(exc)) from None
    if complete and not head.strip():
        raise LoadError(str(path), "empty file")
    try:
        codec, bom = _detect(head, complete)
    except ValueError as exc:
        raise LoadError(str(path), str(exc)) from None
    return _windows(path, codec, bom, window)


def _windows(path: Path, codec: str, skip: int, window: int) -> Iterator[str]:
    """The text of ``path`` from byte ``skip`` on, decoded incrementally."""
    decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    held = ""  # a final CR waits: it may be the first half of a CRLF
    try:
        with open(path, "rb") as fh:
            fh.seek(skip)
            while True:
                data = fh.read(window)
                text = held + decoder.decode(data, final=not data)
                held = "\r" if data and text.endswith("\r") else ""
                text = text[: len(text) - len(held)].replace("\r\n", "\n").replace("\r", "\n")
                if text:
                    yield text
                if not data:
                    return
    except OSError as exc:
        raise LoadError(str(path), _os_reason(exc)) from None


def _os_reason(exc: OSError) -> str:
    """'permission denied', 'no such file or directory', 'is a directory', ..."""
    return (exc.strerror or str(exc)).lower()


def iter_files(
    paths: Iterable[str | Path], *, follow_symlinks: bool = False
) -> Iterator[Path | Skipped]:
    """Files to index under ``paths`` (sorted), and a :class:`Skipped` for each file left out.

    Hidden entries and tool folders (``.git``, ``node_modules``, ...) are
    passed over silently.  A symbolic link is never followed into a loop; a
    link pointing inside its folder is passed over (its target is indexed
    under its real path) and one pointing outside is reported, not followed,
    unless ``follow_symlinks``.
    """
    roots = check_roots(paths)
    walker = _Walker(follow_symlinks)
    for root in roots:
        yield from walker.root(root)


def check_roots(paths: Iterable[str | Path]) -> list[Path]:
    """``paths`` as :class:`Path` objects; :class:`LoadError` if one cannot be found.

    A missing root is the caller's mistake, not a file to skip: ingest checks
    them before anything else (before loading a model).
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        try:
            root.stat()
        except OSError as exc:
            raise LoadError(shown(str(root)), f"{_os_reason(exc)} — check the path") from None
    return roots


class _Walker:
    """Walk state shared by all roots, so nothing is visited or yielded twice."""

    def __init__(self, follow_symlinks: bool) -> None:
        self.follow = follow_symlinks
        self.seen: set[tuple[int, int]] = set()  # (device, inode) of dirs and files

    def root(self, path: Path) -> Iterator[Path | Skipped]:
        """Everything under one given path (a file given by name is never hidden)."""
        if not self._first_visit(path.stat()):
            return
        if path.is_dir():
            yield from self._walk(path, path.resolve())
        else:
            yield _check_file(path)

    def _first_visit(self, st: os.stat_result) -> bool:
        key = (st.st_dev, st.st_ino)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def _walk(self, folder: Path, root: Path) -> Iterator[Path | Skipped]:
        """Depth first in name order, with an explicit stack: no recursion limit on depth."""
        stack = [iter(self._entries(folder))]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif isinstance(item, Skipped):
                yield item
            else:
                for found in self._entry(item[0], item[1], root):
                    if isinstance(found, _Folder):
                        stack.append(iter(self._entries(found.path)))
                    else:
                        yield found

    @staticmethod
    def _entries(folder: Path) -> list[tuple[Path, bool] | Skipped]:
        """A folder's wanted entries as (path, is_symlink), sorted; or why it cannot be read."""
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if _wanted(e.name)), key=lambda e: e.name)
        except OSError as exc:
            return [Skipped(folder, _os_reason(exc), unreadable=True)]
        return [(folder / e.name, e.is_symlink()) for e in entries]

    def _entry(
        self, path: Path, is_link: bool, root: Path
    ) -> Iterator[Path | Skipped | _Folder]:
        if is_link:
            target = Path(os.path.realpath(path))
            if not target.exists():
                yield Skipped(path, "broken symlink")
                return
            if target == root or root in target.parents:
                return  # the walk reaches the target under its own name
            if not self.follow:
                yield Skipped(path, "symlink outside the folder (not followed)")
                return
        try:
            st = path.stat()
        except OSError as exc:
            yield Skipped(path, _os_reason(exc), unreadable=True)
            return
        if not self._first_visit(st):
            return  # a loop, or a second way to the same file
        if stat.S_ISDIR(st.st_mode):
            yield _Folder(path)
        elif stat.S_ISREG(st.st_mode):
            yield _check_file(path)
        else:
            yield Skipped(path, "not a regular file")


@dataclass(frozen=True)
class _Folder:
    """A folder :meth:`_Walker._walk` still has to enter."""

    path: Path


def _wanted(name: str) -> bool:
    """Hidden entries and tool folders are not the user's documents."""
    return not name.startswith(".") and name not in IGNORED_DIRS


def _check_file(path: Path) -> Path | Skipped:
    """The path itself if ragkit can read it, else why not."""
    kind = kind_of(path)
    if kind is None:
        return Skipped(path, _unsupported(path))
    if not path.is_file():
        return Skipped(path, "not a regular file")
    if kind in _BINARY_KINDS:
        return path  # binary by nature; load_file checks it
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF)
    except OSError as exc:
        return Skipped(path, _os_reason(exc), unreadable=True)
    if not _by_content(path):
        return Skipped(path, "binary file") if _looks_binary(head) else path
    # Only the content says what this is: nothing in it, nothing to index (py.typed, a lock).
    if not head.strip() and len(head) < _SNIFF:
        return Skipped(path, "empty file")
    text = looks_like_text(head, complete=len(head) < _SNIFF)
    return path if text else Skipped(path, "binary file")
