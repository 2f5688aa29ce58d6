"""Readers for the formats that are parsed whole: PDF (with pypdf) and HTML.

:func:`pdf_pages` gives the text of each page of a PDF that has text;
:func:`html_to_text` the visible text of a page, with its headings as
markdown ``#`` lines so that chunks follow them.  Damaged, encrypted or
image-only PDFs raise :class:`~ragkit.errors.LoadError` with a one-line reason.
"""

from __future__ import annotations

import io
import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LoadError

if TYPE_CHECKING:
    from pypdf import PdfReader

__all__ = ["html_to_text", "pdf_pages"]


def pdf_pages(path: Path, data: bytes) -> list[tuple[int, str]]:
    """(page number, text) of each page of a PDF that has text; newlines normalized."""
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
    texts = [(n, text.replace("\r\n", "\n").replace("\r", "\n")) for n, text in pages
             if text.strip()]
    if not texts:
        raise LoadError(str(path), "PDF has no text layer (scanned?) — run OCR on it first")
    return texts


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
