"""Finding the user's documents and reading them into text.

:func:`iter_files` walks files and folders and says why it leaves anything
out; :func:`load_file` turns one file into :class:`Document` objects (one per
page for a PDF).  Files that cannot be read raise
:class:`~ragkit.errors.LoadError` with a one-line reason, never a traceback,
so ingest can report them and go on.

Big files: a text-like file (plain text, markdown, source code, ...) over
:data:`STREAM_ABOVE` bytes is not loaded whole: :func:`open_text` decodes it
in windows of about a megabyte, for :func:`~ragkit.chunking.chunk_stream`, so
it may be of any size.  The formats that must be read whole (pypdf needs the
whole PDF, HTML is parsed in one go) are capped instead: above 32 MB for HTML,
8 times that for PDFs (most of a PDF's bytes are images and fonts), a file is
refused *before* it is read, with the reason and the way to raise the cap,
``RAGKIT_MAX_FILE_MB`` (PDFs get 8 times it).  Memory for one file therefore
stays within a window, or a small multiple of the cap.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LoadError

if TYPE_CHECKING:
    from pypdf import PdfReader

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Document",
    "Skipped",
    "check_size",
    "decode_text",
    "html_to_text",
    "iter_files",
    "load_file",
    "open_text",
    "streams",
]

_KINDS = {
    "markdown": ".md .markdown",
    "text": ".txt .text .csv .tsv .log .tex .org .adoc",
    "rst": ".rst",
    "html": ".html .htm .xhtml",
    "pdf": ".pdf",
    "code": (
        ".py .pyi .js .jsx .mjs .ts .tsx .go .rs .java .kt .scala .c .h .cc .cpp .hpp .cs "
        ".rb .php .swift .lua .r .sql .sh .bash .zsh .ps1 .css .scss .xml .proto "
        ".json .yaml .yml .toml .ini .cfg .conf"
    ),
}
#: File suffix (lower case) -> document kind.
SUFFIX_KIND: dict[str, str] = {s: kind for kind, ss in _KINDS.items() for s in ss.split()}
#: Every suffix ragkit reads.
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(SUFFIX_KIND)

#: Folders that hold tools' files, not the user's documents (hidden ones are skipped too).
IGNORED_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv"})

_SNIFF = 8192  # bytes looked at to tell text from binary
DEFAULT_MAX_FILE_MB = 32  # HTML files; PDFs may be PDF_SIZE_FACTOR times bigger
PDF_SIZE_FACTOR = 8
_WHOLE_KINDS = frozenset({"html", "pdf"})  # read whole, so capped; other kinds can be streamed
#: Text-like files bigger than this are decoded and chunked in windows (:func:`open_text`).
STREAM_ABOVE = 4_000_000
WINDOW_BYTES = 1 << 20
_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


@dataclass(frozen=True)
class Document:
    """Text of one file, or of one page of a PDF (``page`` is 1-based; None otherwise)."""

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


def decode_text(data: bytes) -> str:
    """Decode a text file: UTF-8 (BOM or not), UTF-16/32 with BOM, else GB18030.

    >>> decode_text(b"\\xef\\xbb\\xbfcaf\\xc3\\xa9")
    'café'
    >>> decode_text("熊猫吃竹子。".encode("gb18030"))
    '熊猫吃竹子。'
    >>> decode_text(b"caf\\xe9 au lait")
    'caf\\ufffd au lait'
    >>> decode_text(b"\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\rIHDR")
    Traceback (most recent call last):
    ...
    ValueError: binary file
    """
    codec, bom = _detect(data)
    return data[bom:].decode(codec, errors="replace")


def _detect(data: bytes, complete: bool = True) -> tuple[str, int]:
    """(codec, length of its BOM) of a text file's bytes, or ValueError for a binary file.

    ``complete``: ``data`` is the whole file, not its first bytes (which may end
    inside a character).
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    if b"\x00" in data[:_SNIFF]:
        raise ValueError("binary file")
    if _decoded(data, "utf-8", complete) is not None:
        return "utf-8", 0
    chinese = _decoded(data, "gb18030", complete)
    if chinese is not None and _looks_chinese(chinese):
        return "gb18030", 0
    text = data.decode("utf-8", errors="replace")
    if text.count("\ufffd") * 3 > len(text):  # mostly undecodable: not text at all
        raise ValueError("binary file")
    return "utf-8", 0


def _decoded(data: bytes, codec: str, complete: bool) -> str | None:
    """``data`` decoded strictly, or None if it is not in ``codec``."""
    try:
        return codecs.getincrementaldecoder(codec)().decode(data, final=complete)
    except UnicodeDecodeError:
        return None


def _looks_chinese(text: str) -> bool:
    """Whether a GB18030 reading is Chinese text rather than Latin-1 bytes that happen to decode."""
    # Real Chinese text decodes to mostly CJK characters and punctuation.
    foreign = len(_NON_ASCII.findall(text))
    return len(_CHINESE.findall(text)) * 2 >= foreign


def _looks_binary(head: bytes) -> bool:
    """NUL bytes in a file's first bytes, without a UTF-16/32 BOM, mean binary."""
    return b"\x00" in head and not any(head.startswith(bom) for bom, _ in _BOMS)


def streams(path: Path, size: int) -> bool:
    """Whether a file of ``size`` bytes is read in windows (:func:`open_text`), not whole."""
    kind = SUFFIX_KIND.get(Path(path).suffix.lower())
    return kind is not None and kind not in _WHOLE_KINDS and size > STREAM_ABOVE


def max_file_bytes(kind: str) -> int:
    """The size above which a PDF or HTML file is refused unread (see the module doc)."""
    raw = os.environ.get("RAGKIT_MAX_FILE_MB", "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_MAX_FILE_MB
    except ValueError:
        megabytes = DEFAULT_MAX_FILE_MB
    factor = PDF_SIZE_FACTOR if kind == "pdf" else 1
    return int(megabytes * factor * 1_000_000)


def check_size(path: Path, size: int) -> None:
    """Raise :class:`LoadError` if a file of ``size`` bytes is over the cap for its kind.

    Only PDF and HTML files are capped: text-like files of any size can be streamed.
    """
    kind = SUFFIX_KIND.get(Path(path).suffix.lower(), "text")
    if kind not in _WHOLE_KINDS:
        return
    limit = max_file_bytes(kind)
    if size > limit:
        raise LoadError(
            str(path),
            f"file too large ({size / 1e6:.1f} MB; the limit for {kind} files is "
            f"{limit / 1e6:g} MB) — split it, or raise RAGKIT_MAX_FILE_MB",
        )


def load_file(path: Path) -> list[Document]:
    """Read one file into documents: one for a text file, one per page with text for a PDF.

    PDF and HTML files over the size cap (:func:`max_file_bytes`) are refused
    without being read; other files are read whole whatever their size
    (:func:`open_text` reads a big one a window at a time).
    """
    path = Path(path)
    kind = SUFFIX_KIND.get(path.suffix.lower())
    if kind is None:
        raise LoadError(str(path), _unsupported(path))
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(str(path), _os_reason(exc)) from None
    check_size(path, size)
    data = _read(path, max_file_bytes(kind) if kind in _WHOLE_KINDS else -1)
    if not data.strip():
        raise LoadError(str(path), "empty file")
    if kind == "pdf":
        return _load_pdf(path, data)
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


def _unsupported(path: Path) -> str:
    suffix = path.suffix.lower()
    return f"unsupported file type {suffix}" if suffix else "unsupported file type (no extension)"


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


def _load_pdf(path: Path, data: bytes) -> list[Document]:
    """One document per PDF page that has text."""
    if b"%PDF-" not in data[:1024]:
        raise LoadError(str(path), "not a PDF (no %PDF- header)")
    # Readers look for the end marker in the last 1024 bytes; without it the
    # file was cut short, and pypdf would quietly index whatever survived.
    if b"%%EOF" not in data[-1024:]:
        raise LoadError(str(path), "truncated PDF (no %%EOF at the end) — fetch or export it again")
    from pypdf import PdfReader

    # pypdf logs every oddity it works around in real-world PDFs, even at error
    # level; what matters reaches the user as text or as a LoadError.
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    try:
        reader = PdfReader(io.BytesIO(data))
        _unlock(reader, path)
        pages = [(n, page.extract_text() or "") for n, page in enumerate(reader.pages, 1)]
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many exception types on damaged files
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:80]
        raise LoadError(str(path), f"broken PDF ({detail})") from None
    if not pages:
        raise LoadError(str(path), "PDF has no pages")
    documents = [
        Document(path, n, text.replace("\r\n", "\n").replace("\r", "\n"), "pdf")
        for n, text in pages
        if text.strip()
    ]
    if not documents:
        raise LoadError(str(path), "PDF has no text layer (scanned?) — run OCR on it first")
    return documents


def _unlock(reader: PdfReader, path: Path) -> None:
    """Open an encrypted PDF with the empty user password, as viewers do."""
    from pypdf.errors import DependencyError

    try:
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(str(path), "encrypted PDF — decrypt it first")
    except DependencyError:  # AES needs the cryptography package
        why = "encrypted PDF (AES) — install cryptography or decrypt it first"
        raise LoadError(str(path), why) from None


_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Newlines a tag forces around itself: blocks make paragraphs, the rest lines.
_BLOCK_TAGS = (
    "address article aside blockquote details div dl fieldset figure footer form header hr "
    "main nav ol p pre section summary table ul"
)
_BREAKS = dict.fromkeys(_BLOCK_TAGS.split(), 2) | dict.fromkeys(
    ["br", "caption", "dd", "dt", "figcaption", "li", "tr"], 1
)


class _HtmlText(HTMLParser):
    """Collects an HTML page's text; headings become markdown ``#`` lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.has_h1 = False
        self._drop = 0  # inside <script> or <style>
        self._pre = 0
        self._in_title = False
        self._heading: list[str] | None = None
        self._level = 0
        self._newlines = 0  # newlines at the end of the text so far

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._drop += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADINGS:
            self._heading, self._level = [], int(tag[1])
        else:
            self._break(_BREAKS.get(tag, 0))
            self._pre += tag == "pre"
            self._emit({"li": "- ", "td": " ", "th": " "}.get(tag, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._drop = max(0, self._drop - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADINGS:
            self._end_heading()
        else:
            self._pre = max(0, self._pre - (tag == "pre"))
            self._break(_BREAKS.get(tag, 0))

    def handle_data(self, data: str) -> None:
        if self._drop:
            return
        if self._in_title:
            self.title += data
        elif self._heading is not None:
            self._heading.append(data)
        elif self._pre:
            self._emit(data, pre=True)
        else:
            self._emit(data)

    def close(self) -> None:
        super().close()
        self._end_heading()

    def _end_heading(self) -> None:
        if self._heading is None:
            return
        title = " ".join("".join(self._heading).split())
        self._heading = None
        if title:
            self.has_h1 = self.has_h1 or self._level == 1
            self._break(2)
            self._emit(f"{'#' * self._level} {title}")
            self._break(2)

    def _emit(self, text: str, *, pre: bool = False) -> None:
        if not pre:  # HTML collapses runs of whitespace outside <pre>
            text = re.sub(r"\s+", " ", text)
            if self._newlines or not self.parts:
                text = text.lstrip(" ")
        if text:
            self.parts.append(text)
            self._newlines = len(text) - len(text.rstrip("\n"))

    def _break(self, newlines: int) -> None:
        """End the line so that ``newlines`` newlines (at least) follow the last text."""
        if not self.parts or not newlines:
            return
        self.parts[-1] = self.parts[-1].rstrip(" ")
        if newlines > self._newlines:
            self.parts.append("\n" * (newlines - self._newlines))
            self._newlines = newlines


def html_to_text(html: str) -> str:
    """Visible text of an HTML page, with h1–h6 as markdown headings.

    >>> html_to_text("<h1>Guide</h1><p>Hello <b>you</b>.</p><script>x()</script>")
    '# Guide\\n\\nHello you.'
    """
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t]+\n", "\n", "".join(parser.parts))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    title = " ".join(parser.title.split())
    if title and not parser.has_h1:  # the title is the page's heading when it has no h1
        text = f"# {title}\n\n{text}".rstrip()
    return text


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
    roots = [Path(p) for p in paths]
    for root in roots:  # a missing root is the caller's mistake, not a file to skip
        try:
            root.stat()
        except OSError as exc:
            raise LoadError(str(root), _os_reason(exc)) from None
    walker = _Walker(follow_symlinks)
    for root in roots:
        yield from walker.root(root)


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
    if path.suffix.lower() not in SUFFIX_KIND:
        return Skipped(path, _unsupported(path))
    if not path.is_file():
        return Skipped(path, "not a regular file")
    if path.suffix.lower() == ".pdf":
        return path  # binary by nature; load_file checks it
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF)
    except OSError as exc:
        return Skipped(path, _os_reason(exc), unreadable=True)
    return Skipped(path, "binary file") if _looks_binary(head) else path
