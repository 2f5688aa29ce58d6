"""Spreadsheets and delimited text: ``.xlsx`` (openpyxl, read-only), ``.csv`` and ``.tsv``.

A sheet's first row with text is its header; every row after it becomes
``header: value`` lines, one paragraph per row.  Rows are grouped into blocks
of about a chunk each under a ``# name > rows A-B`` heading (the heading path
of a sheet's rows), so every chunk says which sheet and which rows it holds
(cited as ``budget.xlsx:Inventory — rows 12-40``; a CSV file as
``data.csv:rows 12-40``).  A sheet is read up to :data:`MAX_ROWS` rows with
text and :data:`MAX_COLUMNS` columns; the rest is left out and the sheet's last
block says so.  CSV files are decoded as text files are (:mod:`.decoding`), a
window at a time, their dialect sniffed.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from ..errors import LoadError
from .containers import broken, need, open_zip
from .markup import Part, escape, heading, join_blocks

__all__ = ["MAX_COLUMNS", "MAX_ROWS", "read_csv", "read_xlsx", "sheet_text"]

#: Rows with text read from one sheet; a bigger sheet is cut here, and says so.
MAX_ROWS = 100_000
#: Columns read from one row.
MAX_COLUMNS = 256
#: Characters of rows grouped under one ``rows A-B`` heading: about a default chunk.
BLOCK_CHARS = 800


def sheet_text(name: str, rows: Iterable[tuple[int, list[str]]]) -> str:
    """Markdown of one sheet from its (row number, cell texts) rows; "" if it has no data.

    ``name``: the sheet's heading ("" for a CSV file, whose blocks stand alone).

    >>> print(sheet_text("Stock", [(1, ["Item", "Qty"]), (2, ["Pump", "4"]), (3, ["Valve", ""])]))
    # Stock > rows 2-3
    <BLANKLINE>
    Item: Pump
    Qty: 4
    <BLANKLINE>
    Item: Valve
    """
    # Each block heads itself "sheet > rows A-B": one level, so no chunk holds a lone sheet name.
    sheet = name.replace(">", "›").strip()
    blocks: list[str] = []
    header: list[str] | None = None
    group: list[str] = []
    first = last = 0
    count = 0
    for number, cells in rows:
        cells = [" ".join(c.split()) for c in cells[:MAX_COLUMNS]]
        while cells and not cells[-1]:  # files pad rows to the sheet's width
            cells.pop()
        if not cells:
            continue
        count += 1
        if count > MAX_ROWS:
            group.append(f"(ragkit read the first {MAX_ROWS} rows of this sheet; "
                         "the rest is not indexed)")
            break
        if header is None:
            header = [c or _column(i) for i, c in enumerate(cells)]
            continue
        group.append(_record(header, cells))
        first, last = first or number, number
        if sum(map(len, group)) >= BLOCK_CHARS:
            blocks.append(_block(sheet, first, last, group))
            group, first = [], 0
    if group:
        blocks.append(_block(sheet, first or last, last, group))
    if header is not None and not blocks:  # a header row alone: index it as the data
        blocks.append(_block(sheet, 1, 1, [escape(" | ".join(header))]))
    return join_blocks(blocks)


def _record(header: list[str], cells: list[str]) -> str:
    """One row as ``header: value`` lines (empty cells left out)."""
    lines = []
    for i, value in enumerate(cells):
        if value:
            name = header[i] if i < len(header) else _column(i)
            lines.append(f"{name}: {value}")
    return escape("\n".join(lines))


def _block(sheet: str, first: int, last: int, records: list[str]) -> str:
    rows = f"rows {first}-{last}" if last > first else f"row {first}"
    return join_blocks([heading(1, f"{sheet} > {rows}" if sheet else rows), *records])


def _column(i: int) -> str:
    """A spreadsheet's name of the 0-based column ``i``: A, B, ..., Z, AA, ..."""
    name = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def read_xlsx(path: Path, data: bytes, limit: int) -> list[Part]:
    """An Excel workbook as one part per sheet with data, values as last computed."""
    need("openpyxl", "openpyxl", path)
    open_zip(path, data, limit).close()
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            texts = [sheet_text(ws.title, _xlsx_rows(ws)) for ws in book.worksheets]
        finally:
            book.close()
    except Exception as exc:  # openpyxl raises many types on damaged files
        raise broken(path, exc) from None
    return [(None, text) for text in texts if text]


def _xlsx_rows(ws: Any) -> Iterator[tuple[int, list[str]]]:
    # A file's declared dimensions may be wrong or huge: read the rows it has.
    ws.reset_dimensions()
    for number, row in enumerate(ws.iter_rows(values_only=True, max_col=MAX_COLUMNS), 1):
        yield number, [_cell(v) for v in row]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime) and value.time() == time(0):
        return value.date().isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def read_csv(path: Path, windows: Iterable[str]) -> list[Part]:
    """A CSV or TSV file (its decoded text, in windows) as one part, its dialect sniffed."""
    lines = _lines(iter(windows))
    sample = list(itertools.islice(lines, 50))
    dialect = _dialect(path, "".join(sample))
    try:
        reader = csv.reader(itertools.chain(sample, lines), dialect)
        text = sheet_text("", ((reader.line_num, row) for row in reader))
    except csv.Error as exc:
        raise broken(path, exc) from None
    if not text:
        raise LoadError(str(path), "no rows with text")
    return [(None, text)]


def _dialect(path: Path, sample: str) -> type[csv.Dialect] | csv.Dialect:
    tab = path.suffix.lower() == ".tsv"
    try:
        return csv.Sniffer().sniff(sample, delimiters="\t" if tab else ",;\t|")
    except csv.Error:  # one column, or too irregular to tell: the suffix says
        return csv.excel_tab if tab else csv.excel


def _lines(windows: Iterator[str]) -> Iterator[str]:
    """The lines of text that comes in windows, each with its newline."""
    rest = ""
    for window in windows:
        lines = (rest + window).split("\n")
        rest = lines.pop()
        yield from (line + "\n" for line in lines)
    if rest:
        yield rest
