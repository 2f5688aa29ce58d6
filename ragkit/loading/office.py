"""Word and PowerPoint files, read with python-docx and python-pptx (the ``formats`` extra).

A ``.docx`` becomes one markdown text: paragraphs in order, headings as ``#``
lines (so chunks carry the heading path, as in markdown), list items as ``-``
lines and tables as ``cell | cell`` rows.  A ``.pptx`` becomes one part per
slide (cited as ``slide N``): its title as the heading, then the text of its
shapes (text boxes, placeholders, tables, groups) in order, then the speaker
notes.  The container is checked first (:func:`~.containers.open_zip`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .containers import broken, need, open_zip
from .markup import Part, escape, heading, join_blocks, table_row

__all__ = ["read_docx", "read_pptx"]

_HEADING_STYLE = re.compile(r"heading\s*(\d)", re.IGNORECASE)


def read_docx(path: Path, data: bytes, limit: int) -> list[Part]:
    """A Word document as one markdown part: headings, paragraphs, lists and tables in order."""
    need("docx", "python-docx", path)
    open_zip(path, data, limit).close()
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_docx_blocks(document))
    except Exception as exc:  # python-docx and lxml raise many types on damaged files
        raise broken(path, exc) from None
    return [(None, join_blocks(blocks))]


def _docx_blocks(document: Any) -> Iterator[str]:
    """Each paragraph or table of the body as a markdown block."""
    for item in document.iter_inner_content():
        if hasattr(item, "rows"):
            yield "\n".join(filter(None, (_docx_row(row) for row in item.rows)))
        else:
            yield _docx_paragraph(item)


def _docx_paragraph(paragraph: Any) -> str:
    text = paragraph.text.strip()
    if not text:
        return ""
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style.lower() == "title":
        return heading(1, text)
    match = _HEADING_STYLE.match(style)
    if match:
        return heading(int(match[1]), text)
    if style.lower().startswith("list"):
        return "- " + escape(text)
    return escape(text)


def _docx_row(row: Any) -> str:
    """A table row; a merged cell (the same cell seen in several columns) once."""
    seen: set[int] = set()
    cells = []
    for cell in row.cells:
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            cells.append(cell.text)
    return table_row(cells)


def read_pptx(path: Path, data: bytes, limit: int) -> list[Part]:
    """A presentation as one part per slide with text: title, shapes, tables, speaker notes."""
    need("pptx", "python-pptx", path)
    open_zip(path, data, limit).close()
    import pptx

    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        parts = [(n, _slide_text(slide)) for n, slide in enumerate(presentation.slides, 1)]
    except Exception as exc:
        raise broken(path, exc) from None
    return [(n, text) for n, text in parts if text.strip()]


def _slide_text(slide: Any) -> str:
    title_shape = slide.shapes.title
    title = title_shape.text_frame.text.strip() if title_shape is not None else ""
    blocks = [heading(1, title) if title else ""]
    for shape in slide.shapes:
        if title_shape is None or shape.shape_id != title_shape.shape_id:
            blocks.extend(_shape_blocks(shape))
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = frame.text.strip() if frame is not None else ""
        if notes:
            blocks.append("Speaker notes:\n" + escape(notes))
    return join_blocks(blocks)


def _shape_blocks(shape: Any) -> Iterator[str]:
    """The text of one shape; a group's shapes in order."""
    if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
        for inner in shape.shapes:
            yield from _shape_blocks(inner)
    elif getattr(shape, "has_table", False) and shape.has_table:
        rows = (table_row(cell.text for cell in row.cells) for row in shape.table.rows)
        yield "\n".join(filter(None, rows))
    elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        yield escape(shape.text_frame.text.strip())
