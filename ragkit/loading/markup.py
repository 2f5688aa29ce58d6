"""Writing what a structured document says as markdown, so the chunker follows it.

The readers of office files, e-books, notebooks and mail turn headings into
``#`` lines (the chunker's heading path), tables into ``cell | cell`` rows and
everything else into paragraphs.  A paragraph that would read as markdown
structure (a ``#`` line, a code fence) is escaped, so a document cannot forge
a heading of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Part", "escape", "fenced", "heading", "join_blocks", "table_row"]

#: What a reader gives for one page, slide, cell or message: (its number or None, markdown).
Part = tuple[int | None, str]

_STRUCTURE = re.compile(r"^( {0,3})(#|`{3}|~{3})", re.MULTILINE)


def escape(text: str) -> str:
    r"""Text with its lines that markdown would read as headings or fences escaped.

    >>> escape("# not a heading\nplain")
    '\\# not a heading\nplain'
    """
    return _STRUCTURE.sub(r"\1\\\2", text)


def heading(level: int, text: str) -> str:
    r"""A markdown heading line of ``level`` (1–6) for ``text`` on one line.

    >>> heading(2, " Budget\n 2024 ")
    '## Budget 2024'
    """
    return f"{'#' * min(max(level, 1), 6)} {' '.join(text.split())}"


def table_row(cells: Iterable[str]) -> str:
    r"""One table row as ``cell | cell``, each cell on one line; empty if no cell has text.

    >>> table_row(["Pump", "", " 4\nunits", ""])
    'Pump |  | 4 units'
    """
    texts = [" ".join(c.split()) for c in cells]
    while texts and not texts[-1]:
        texts.pop()
    return escape(" | ".join(texts))


def fenced(code: str, language: str = "") -> str:
    """``code`` in a fence longer than any backtick run inside it.

    >>> print(fenced("x = 1", "python"))
    ```python
    x = 1
    ```
    """
    runs = [len(r) for r in re.findall(r"`+", code)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


def join_blocks(blocks: Iterable[str]) -> str:
    """Non-empty blocks separated by blank lines."""
    return "\n\n".join(b.strip("\n") for b in blocks if b.strip())
