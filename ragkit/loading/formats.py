"""The readers of structured formats, by suffix, and how their locations are shown.

Each reader takes (path, the file's bytes, the cap on what a container may
unpack to) and returns parts, ``(number or None, markdown text)``; the
number is the part's page, slide, cell or message.  Readers are imported when
a file needs them, so a missing optional library costs only those files (the
reader says ``pip install 'ragkit[formats]'``).

A chunk keeps its location in the store's two fields, ``page`` and the
heading path; :func:`location` shows them as a citation does:
``deck.pptx:slide 3``, ``budget.xlsx:Inventory`` (with ``rows 12-40`` as the
heading), ``data.csv:rows 12-40``, ``report.pdf:3``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path, PurePath

from ..errors import LoadError
from .containers import broken
from .markup import Part

__all__ = ["READERS", "location", "read_structured", "reader_for"]

#: Suffix -> "module:function" of its reader in this package.
READERS: dict[str, str] = {
    ".docx": "office:read_docx",
    ".pptx": "office:read_pptx",
    ".xlsx": "sheets:read_xlsx",
    ".odt": "opendoc:read_odt",
    ".odp": "opendoc:read_odp",
    ".ods": "opendoc:read_ods",
    ".epub": "ebook:read_epub",
    ".ipynb": "notebook:read_ipynb",
    ".eml": "mail:read_eml",
    ".mbox": "mail:read_mbox",
}

Reader = Callable[[Path, bytes, int], list[Part]]

# How a part's number is shown, by suffix (others: the bare number, as a PDF page).
_NUMBERED = {".pptx": "slide", ".odp": "slide", ".ipynb": "cell", ".mbox": "message"}
_SHEETS = frozenset({".xlsx", ".ods"})  # heading "sheet > rows A-B"
_TABLES = frozenset({".csv", ".tsv"})  # heading "rows A-B"


def reader_for(suffix: str) -> Reader | None:
    """The reader of files with ``suffix`` (lower case), or None if they are not structured."""
    target = READERS.get(suffix)
    if target is None:
        return None
    module, name = target.split(":")
    reader: Reader = getattr(importlib.import_module(f".{module}", __package__), name)
    return reader


def read_structured(path: Path, data: bytes, limit: int) -> list[Part]:
    """The parts of a file in one of the formats of :data:`READERS`.

    ``limit``: the most its container may unpack to.  Whatever else a parser
    trips on fails this file, with a reason, not the ingest.
    """
    reader = reader_for(path.suffix.lower())
    if reader is None:
        raise LoadError(str(path), f"unsupported file type {path.suffix.lower()}")
    try:
        return reader(path, data, limit)
    except LoadError:
        raise
    except (Exception, RecursionError) as exc:
        raise broken(path, exc) from None


def location(source: str, page: int | None, heading: str) -> tuple[str, str]:
    """(where a chunk is, the rest of its heading path) as citations show them.

    >>> location("deck.pptx", 3, "Plan")
    ('deck.pptx:slide 3', 'Plan')
    >>> location("budget.xlsx", None, "Inventory > rows 12-40")
    ('budget.xlsx:Inventory', 'rows 12-40')
    >>> location("data.csv", None, "rows 2-9")
    ('data.csv:rows 2-9', '')
    >>> location("manual.pdf", 3, "Setup")
    ('manual.pdf:3', 'Setup')
    """
    suffix = PurePath(source).suffix.lower()
    if suffix in _SHEETS and heading:
        sheet, _, rest = heading.partition(" > ")
        return f"{source}:{sheet}", rest
    if suffix in _TABLES and heading.startswith("row"):
        return f"{source}:{heading}", ""
    if page is None:
        return source, heading
    label = _NUMBERED.get(suffix)
    return f"{source}:{label} {page}" if label else f"{source}:{page}", heading
