"""What a file is by its name, and how big it may be: the kind table and the size policy.

What a file is: its extension says, for the kinds in :data:`SUFFIX_KIND`;
a file whose extension says it is never text (images, archives, media,
executables: :data:`BINARY_SUFFIXES`) is left out unread; any other file
(``README``, ``LICENSE``, ``Apache-2.0``, ``notes.v2``) is plain text if its
first bytes read as text (:func:`~ragkit.loading.decoding.looks_like_text`).

Big files: a text-like file (plain text, markdown, source code, ...) over
:data:`STREAM_ABOVE` bytes is not loaded whole: :func:`~ragkit.loading.files.open_text`
decodes it in windows of about a megabyte, for :func:`~ragkit.chunking.text.chunk_stream`,
so it may be of any size.  The formats that must be read whole (pypdf needs the
whole PDF, HTML is parsed in one go) are capped instead: above 32 MB for HTML,
8 times that for PDFs (most of a PDF's bytes are images and fonts), a file is
refused *before* it is read, with the reason and the way to raise the cap,
``RAGKIT_MAX_FILE_MB`` (PDFs get 8 times it).  Memory for one file therefore
stays within a window plus the text still being chunked (at most
:data:`~ragkit.chunking.streaming.MAX_CARRY` characters where the chunker finds no
place to cut), or a small multiple of the cap.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LoadError
from ..settings import Settings

__all__ = [
    "BINARY_SUFFIXES",
    "STREAM_ABOVE",
    "SUFFIX_KIND",
    "SUPPORTED_SUFFIXES",
    "check_size",
    "kind_of",
    "max_file_bytes",
    "max_file_mb",
    "streams",
]

_KINDS = {
    "markdown": ".md .markdown",
    "text": ".txt .text .log .tex .org .adoc",
    "rst": ".rst",
    "html": ".html .htm .xhtml",
    "pdf": ".pdf",
    # Read by the readers of ragkit.loading.formats, into markdown text.
    "office": ".docx .pptx .xlsx .odt .odp .ods",
    "ebook": ".epub",
    "notebook": ".ipynb",
    "mail": ".eml .mbox",
    "table": ".csv .tsv",
    "code": (
        ".py .pyi .js .jsx .mjs .ts .tsx .go .rs .java .kt .scala .c .h .cc .cpp .hpp .cs "
        ".rb .php .swift .lua .r .sql .sh .bash .zsh .ps1 .css .scss .xml .proto "
        ".json .yaml .yml .toml .ini .cfg .conf"
    ),
}
#: File suffix (lower case) -> document kind.
SUFFIX_KIND: dict[str, str] = {s: kind for kind, ss in _KINDS.items() for s in ss.split()}
#: Every suffix ragkit reads by its name (files with other names are read if they are text).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(SUFFIX_KIND)
_NEVER_TEXT = (  # images, archives and packages, compiled code, media, fonts, office, data
    ".png .jpg .jpeg .gif .bmp .tif .tiff .ico .icns .webp .heic .avif .psd .xcf .raw .cr2 .nef "
    ".zip .gz .tgz .bz2 .tbz2 .xz .txz .zst .lz .lz4 .lzma .7z .rar .tar .cab .jar .war .whl "
    ".egg .apk .deb .rpm .iso .dmg .img .pkg .msi .snap "
    ".exe .dll .so .dylib .o .a .lib .class .pyc .pyo .wasm .elc "
    ".mp3 .m4a .aac .flac .ogg .oga .opus .wav .aiff .mid .mp4 .m4v .mkv .mov .avi .webm .wmv "
    ".flv .mpg .mpeg "
    ".ttf .otf .woff .woff2 .eot "
    ".doc .xls .ppt .mobi "
    ".sqlite .sqlite3 .db .mdb .npy .npz .pkl .pickle .pt .pth .onnx .gguf .safetensors .h5 "
    ".parquet .faiss .bin"
)
#: Suffixes of files that are never text: left out without being read.
BINARY_SUFFIXES: frozenset[str] = frozenset(_NEVER_TEXT.split())


PDF_SIZE_FACTOR = 8
_WHOLE_KINDS = frozenset({"html", "pdf", "office", "ebook", "notebook", "mail"})  # read whole,
# so capped; other kinds can be streamed.  Zip containers are binary like PDFs.
_BINARY_KINDS = frozenset({"pdf", "office", "ebook"})
#: Text-like files bigger than this are decoded and chunked in windows
#: (:func:`~ragkit.loading.files.open_text`).
STREAM_ABOVE = 4_000_000


def kind_of(path: Path) -> str | None:
    """The kind of document a file is by its name; None if it is never text.

    A name that says nothing (no extension, or one ragkit does not know) gives
    ``"text"``: such a file is read as plain text if its content is text.

    >>> kind_of(Path("notes.MD")), kind_of(Path("LICENSE")), kind_of(Path("Apache-2.0"))
    ('markdown', 'text', 'text')
    >>> kind_of(Path("photo.jpg")) is None
    True
    """
    suffix = Path(path).suffix.lower()
    kind = SUFFIX_KIND.get(suffix)
    return kind if kind or suffix in BINARY_SUFFIXES else "text"


def _by_content(path: Path) -> bool:
    """Whether only its content can tell if a file is text (its extension is unknown)."""
    suffix = path.suffix.lower()
    return suffix not in SUFFIX_KIND and suffix not in BINARY_SUFFIXES


def streams(path: Path, size: int) -> bool:
    """Whether a file of ``size`` bytes is read in windows (by :func:`~.files.open_text`)."""
    kind = kind_of(path)
    return kind is not None and kind not in _WHOLE_KINDS | {"table"} and size > STREAM_ABOVE


def max_file_mb(settings: Settings | None = None) -> float:
    """The size cap of HTML files in MB (``settings``, by default the environment's).

    A :class:`UsageError` if ``RAGKIT_MAX_FILE_MB`` is not a size.
    """
    return (settings or Settings.from_env()).max_file_mb


def max_file_bytes(kind: str, cap_mb: float | None = None) -> int:
    """The size above which a file read whole is refused unread (see the module doc).

    Every kind but HTML gets :data:`PDF_SIZE_FACTOR` times the cap: images swell
    PDFs, office files, e-books, notebooks and mail.  It is also the most a zip
    container may unpack to.  ``cap_mb``: the cap of HTML files (default:
    :func:`max_file_mb`).
    """
    factor = 1 if kind == "html" else PDF_SIZE_FACTOR
    return int((cap_mb or max_file_mb()) * factor * 1_000_000)


def check_size(path: Path, size: int, cap_mb: float | None = None) -> None:
    """Raise :class:`LoadError` if a file of ``size`` bytes is over the cap for its kind.

    Only the files read whole are capped (PDF, HTML, office files, e-books,
    notebooks, mail): text-like files of any size can be streamed.
    """
    kind = SUFFIX_KIND.get(Path(path).suffix.lower(), "text")
    if kind not in _WHOLE_KINDS:
        return
    limit = max_file_bytes(kind, cap_mb)
    if size > limit:
        raise LoadError(
            str(path),
            f"file too large ({size / 1e6:.1f} MB; the limit for {kind} files is "
            f"{limit / 1e6:g} MB) — split it, or raise RAGKIT_MAX_FILE_MB",
        )
