"""OpenDocument files (``.odt``, ``.odp``, ``.ods``), read with zipfile and ElementTree.

Their text is in ``content.xml``.  A text document reads like a ``.docx``
(headings by outline level, paragraphs, lists, tables as ``cell | cell``); a
presentation gives one part per slide (``slide N``, its title frame as the
heading, its notes after); a spreadsheet reads like an ``.xlsx``.  An
encrypted file (its manifest lists encryption data) is refused as
password-protected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element

from ..errors import LoadError
from .containers import open_zip, read_member, read_xml
from .markup import Part, escape, heading, join_blocks, table_row
from .sheets import MAX_COLUMNS, MAX_ROWS, sheet_text

__all__ = ["read_odp", "read_ods", "read_odt"]

_NS = {
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
}


def _tag(qualified: str) -> str:
    prefix, name = qualified.split(":")
    return f"{{{_NS[prefix]}}}{name}"


_H, _P, _LIST, _TABLE = _tag("text:h"), _tag("text:p"), _tag("text:list"), _tag("table:table")
_ROW, _CELL = _tag("table:table-row"), _tag("table:table-cell")
_COVERED = _tag("table:covered-table-cell")
_NOTES, _PAGE = _tag("presentation:notes"), _tag("draw:page")
_INLINE = {_tag("text:s"): " ", _tag("text:tab"): "\t", _tag("text:line-break"): "\n"}
_SKIPPED = {_tag("text:note"), _tag("office:annotation"), _tag("text:tracked-changes")}


def _number(element: Element, attribute: str) -> int:
    """A count attribute (a level, a repeat); 1 if it is missing or not a positive number."""
    value = element.get(_tag(attribute), "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _content(path: Path, data: bytes, limit: int, body: str) -> Element:
    """The ``office:body`` child ``body`` (``office:text``, ...) of a checked file."""
    archive = open_zip(path, data, limit)
    with archive:
        names = set(archive.namelist())
        if "META-INF/manifest.xml" in names and \
                b"encryption-data" in read_member(path, archive, "META-INF/manifest.xml", limit):
            raise LoadError(str(path), "password-protected file — save a copy without the "
                                       "password and ingest that")
        root = read_xml(path, archive, "content.xml", limit)
    found = root.find(f"office:body/office:{body}", _NS)
    if found is None:
        raise LoadError(str(path), f"broken {path.suffix.lower()} file (no office:{body} in "
                                   "content.xml)")
    return found


def read_odt(path: Path, data: bytes, limit: int) -> list[Part]:
    """An OpenDocument text as one markdown part."""
    return [(None, join_blocks(_blocks(_content(path, data, limit, "text"))))]


def _blocks(element: Element) -> Iterator[str]:
    """Headings, paragraphs, list items and tables under ``element``, in order."""
    for child in element:
        if child.tag == _H:
            level = _number(child, "text:outline-level")
            yield heading(level, _inline(child)) if _inline(child).strip() else ""
        elif child.tag == _P:
            yield escape(_inline(child).strip())
        elif child.tag == _LIST:
            yield "\n".join("- " + item for item in _list_items(child))
        elif child.tag == _TABLE:
            yield "\n".join(filter(None, (table_row(cells) for _, cells in _table_rows(child))))
        elif child.tag not in _SKIPPED:
            yield from _blocks(child)  # sections, frames, text boxes


def _list_items(element: Element) -> Iterator[str]:
    for block in _blocks(element):
        for line in block.splitlines():
            if line.strip():
                yield line.removeprefix("- ")


def _inline(element: Element) -> str:
    """The text of a paragraph: spaces, tabs and line breaks as ODF writes them."""
    out = [element.text or ""]
    for child in element:
        if child.tag in _INLINE:
            count = _number(child, "text:c") if child.tag == _tag("text:s") else 1
            out.append(_INLINE[child.tag] * min(count, 100))
        elif child.tag not in _SKIPPED:
            out.append(_inline(child))
        out.append(child.tail or "")
    return "".join(out)


def _table_rows(table: Element) -> Iterator[tuple[int, list[str]]]:
    """(row number, cell texts) of a table; repeats expanded only where they hold text."""
    number = 0
    for row in table.iter(_ROW):
        repeat = _number(row, "table:number-rows-repeated")
        cells: list[str] = []
        for cell in row:
            if cell.tag not in (_CELL, _COVERED):
                continue
            text = "\n".join(_inline(p) for p in cell.iter(_P))
            times = _number(cell, "table:number-columns-repeated")
            # Files repeat empty cells to the sheet's edge (16384 columns): never expand those.
            cells.extend([text] * (min(times, MAX_COLUMNS - len(cells)) if text.strip() else 1))
            if len(cells) >= MAX_COLUMNS:
                break
        if not any(c.strip() for c in cells):
            number += repeat
            continue
        for _ in range(min(repeat, MAX_ROWS + 1)):
            number += 1
            yield number, cells


def read_ods(path: Path, data: bytes, limit: int) -> list[Part]:
    """An OpenDocument spreadsheet as one part per sheet with data."""
    body = _content(path, data, limit, "spreadsheet")
    texts = [sheet_text(t.get(_tag("table:name"), ""), _table_rows(t))
             for t in body.iter(_TABLE)]
    return [(None, text) for text in texts if text]


def read_odp(path: Path, data: bytes, limit: int) -> list[Part]:
    """An OpenDocument presentation as one part per slide with text."""
    body = _content(path, data, limit, "presentation")
    parts = [(n, _slide(page)) for n, page in enumerate(body.iter(_PAGE), 1)]
    return [(n, text) for n, text in parts if text.strip()]


def _slide(page: Element) -> str:
    title, blocks, notes = "", list[str](), list[str]()
    for frame in page:
        if frame.tag == _NOTES:
            notes = [b for b in _blocks(frame) if b.strip()]
        elif frame.get(_tag("presentation:class")) == "title" and not title:
            title = " ".join(_inline(p) for p in frame.iter(_P))
        else:
            blocks.extend(_blocks(frame))
    if notes:
        blocks.append("Speaker notes:\n" + "\n".join(notes))
    return join_blocks([heading(1, title) if title.strip() else "", *blocks])
