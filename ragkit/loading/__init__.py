"""Loading: files -> documents.

Walks the folders given, applying the skip rules (:mod:`.files`) and the size
policy (:mod:`.kinds`); decodes text (:mod:`.decoding`); reads the formats that
need a reader, PDF and HTML (:mod:`.readers`), office files, e-books, notebooks,
mail and spreadsheets (:mod:`.formats` names their readers and shows their
locations); keys each file by its identity (:mod:`.paths`).  The names below are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Document",
    "Found",
    "Keys",
    "Skipped",
    "check_roots",
    "decode_text",
    "html_to_text",
    "iter_files",
    "load_file",
    "looks_like_text",
    "max_file_mb",
    "open_text",
    "pdf_pages",
    "shown",
    "streams",
]

# name -> module that defines it
_EXPORTS = {
    "Document": "files", "Skipped": "files", "check_roots": "files", "iter_files": "files",
    "load_file": "files", "open_text": "files",
    "SUPPORTED_SUFFIXES": "kinds", "max_file_mb": "kinds", "streams": "kinds",
    "decode_text": "decoding", "looks_like_text": "decoding",
    "html_to_text": "readers", "pdf_pages": "readers",
    "Found": "paths", "Keys": "paths", "shown": "paths",
}

if TYPE_CHECKING:
    from .decoding import decode_text, looks_like_text
    from .files import Document, Skipped, check_roots, iter_files, load_file, open_text
    from .kinds import SUPPORTED_SUFFIXES, max_file_mb, streams
    from .paths import Found, Keys, shown
    from .readers import html_to_text, pdf_pages


__getattr__ = lazy_exports(__name__, _EXPORTS)
