"""Loading: find the documents under the given paths and turn each into text.

Every file ends up either as :class:`Document` records (one per PDF page, so
citations carry page numbers) or as a one-line reason why it was not read;
nothing is dropped silently.
"""

from __future__ import annotations

import codecs
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from .errors import LoadError

__all__ = ["SUPPORTED_SUFFIXES", "Document", "Skipped", "decode_text", "iter_files", "load_file"]

_KINDS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
          ".rst": "rst", ".html": "html", ".htm": "html", ".pdf": "pdf"}
_CODE = (".py .js .mjs .ts .tsx .jsx .go .rs .java .kt .c .h .cc .cpp .hpp .cs .rb .php .swift "
         ".scala .sh .bash .zsh .sql .r .m .lua .pl .json .yaml .yml .toml .ini .cfg .conf .csv "
         ".tsv .tex .xml .css .scss .proto .graphql .env.example .properties .gradle .cmake "
         ".mk .dockerfile .log").split()
SUPPORTED_SUFFIXES = frozenset([*_KINDS, *_CODE])
_SPECIAL_NAMES = {"makefile", "dockerfile", "readme", "license", "changelog"}
_IGNORED_DIRS = {".git", "__pycache__", "node_modules", ".venv", "venv", ".hg", ".svn"}


@dataclass(frozen=True)
class Document:
    """Text from one file (or one page of a PDF)."""

    path: Path
    page: int | None
    text: str
    kind: str


@dataclass(frozen=True)
class Skipped:
    """A file that was found but not read, and why."""

    path: Path
    reason: str


def iter_files(paths: Iterable[str | Path], *, follow_symlinks: bool = False) -> Iterator[Path | Skipped]:
    """Yield the files to read under ``paths`` (sorted), and the ones skipped with a reason."""
    for given in paths:
        root = Path(given)
        if not root.exists() and not root.is_symlink():
            raise LoadError(str(root), "no such file or directory")
        if root.is_dir():
            yield from _walk(root, root.resolve(), follow_symlinks, set())
        else:
            yield _classify(root)


def _walk(folder: Path, root: Path, follow: bool, seen: set[Path]) -> Iterator[Path | Skipped]:
    """Depth-first walk that never loops and stays inside ``root`` unless told otherwise."""
    real = folder.resolve()
    if real in seen:
        yield Skipped(folder, "symlink loop (already visited)")
        return
    seen.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        yield Skipped(folder, f"cannot list folder ({exc.strerror or exc})")
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith(".") or entry.name in _IGNORED_DIRS:
            continue  # hidden files and tool folders are not the user's documents
        if entry.is_symlink() and not follow and not _inside(path, root):
            yield Skipped(path, "symlink outside the folder (not followed; use --follow-symlinks)")
        elif entry.is_dir(follow_symlinks=True):
            yield from _walk(path, root, follow, seen)
        elif entry.is_file(follow_symlinks=True):
            yield _classify(path)
        elif entry.is_symlink():
            yield Skipped(path, "broken symlink")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _classify(path: Path) -> Path | Skipped:
    suffix = path.suffix.lower()
    if suffix in SUPPORTED_SUFFIXES or (not suffix and path.name.lower() in _SPECIAL_NAMES):
        return path
    return Skipped(path, f"unsupported file type {suffix or '(no extension)'}")


def load_file(path: Path) -> list[Document]:
    """Read one file into documents; raises :class:`LoadError` with a one-line reason."""
    kind = _KINDS.get(path.suffix.lower(), "code" if path.suffix else "text")
    try:
        if kind == "pdf":
            return _load_pdf(path)
        data = path.read_bytes()
    except PermissionError:
        raise LoadError(str(path), "permission denied") from None
    except IsADirectoryError:
        raise LoadError(str(path), "is a directory") from None
    if not data.strip():
        raise LoadError(str(path), "empty file")
    try:
        text = decode_text(data)
    except ValueError as exc:
        raise LoadError(str(path), str(exc)) from None
    if kind == "html":
        text, kind = html_to_markdown(text), "markdown"
    return [Document(path, None, text, kind)]


def decode_text(data: bytes) -> str:
    """Decode UTF-8 (with or without BOM), UTF-16 with BOM, else GB18030.

    >>> decode_text("熊猫".encode("utf-16"))
    '熊猫'
    >>> decode_text("熊猫".encode("gb18030"))
    '熊猫'
    >>> decode_text(codecs.BOM_UTF8 + b"hi")
    'hi'
    >>> decode_text(b"\\x00\\x01\\x02")
    Traceback (most recent call last):
    ValueError: binary file
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data[:8192]:
        raise ValueError("binary file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace")


def _load_pdf(path: Path) -> list[Document]:
    """One document per page that has text; pages are numbered from 1."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf logs every repair it attempts; the one-line reason below is what users need.
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(str(path), "encrypted PDF — decrypt it first")
        pages = [(n, page.extract_text() or "") for n, page in enumerate(reader.pages, 1)]
    except LoadError:
        raise
    except (PdfReadError, OSError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(str(path), f"unreadable PDF ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on damaged files
        raise LoadError(str(path), f"unreadable PDF ({type(exc).__name__})") from None
    documents = [Document(path, n, text, "pdf") for n, text in pages if text.strip()]
    if not documents:
        raise LoadError(str(path), "PDF has no text layer (scanned?) — run OCR on it first")
    return documents


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:80] if lines else type(exc).__name__


class _HTMLText(HTMLParser):
    """Collects visible text; headings become markdown headings for the chunker."""

    _BLOCKS = {"p", "div", "li", "br", "tr", "section", "article", "pre", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCKS:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip = max(0, self._skip - 1)
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_markdown(html: str) -> str:
    """Visible text of an HTML page, with headings as markdown ``#`` lines.

    >>> html_to_markdown("<h1>Title</h1><p>Body <b>text</b></p><script>x()</script>")
    '# Title\\n\\nBody text'
    """
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
