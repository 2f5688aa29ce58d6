"""A small PDF writer for tests and the demo corpus: Helvetica text pages, and bad PDFs.

Each page is a text string; its lines are wrapped to the page and drawn in
Helvetica with WinAnsi encoding, so ASCII and Latin-1 text round-trips through
pypdf's text extraction.  The bad-PDF helpers make what ragkit must refuse:
encrypted, image-only (no text layer) and truncated files.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

__all__ = [
    "pdf_bytes",
    "write_encrypted_pdf",
    "write_image_only_pdf",
    "write_pdf",
    "write_truncated_pdf",
]

PAGE_WIDTH, PAGE_HEIGHT = 612, 792  # US Letter, in points
MARGIN = 72
FONT_SIZE = 11
LEADING = 14
# Helvetica averages about half an em per character: 468 pt of line holds ~85.
CHARS_PER_LINE = 80
LINES_PER_PAGE = (PAGE_HEIGHT - 2 * MARGIN) // LEADING


def pdf_bytes(pages: list[str], *, title: str = "") -> bytes:
    """A complete PDF with one page per string."""
    first_page = 5  # objects 1-4: catalog, page tree, font, document info
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title (" + _literal(title) + b") /Producer (ragkit tests/pdfgen.py) >>",
    ]
    for number, text in enumerate(pages, 1):
        content = first_page + 2 * (number - 1) + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>".encode()
        )
        objects.append(_stream(_text_operators(text, number)))
    return _assemble(objects, info=4)


def write_pdf(path: Path | str, pages: list[str], *, title: str = "") -> Path:
    """Write a text PDF with one page per string; returns the path."""
    path = Path(path)
    path.write_bytes(pdf_bytes(pages, title=title))
    return path


def write_encrypted_pdf(
    path: Path | str, pages: list[str], user_password: str, *, owner_password: str = "owner"
) -> Path:
    """Write a text PDF encrypted with RC4-128 (pypdf opens it without extra packages)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    path = Path(path)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def write_image_only_pdf(path: Path | str) -> Path:
    """Write a one-page PDF that shows a grey image and has no text, like a scan."""
    side = 16
    pixels = bytes((x * 16 + y) % 256 for y in range(side) for x in range(side))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
        "/Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>".encode(),
        _stream(b"q 400 0 0 400 106 196 cm /Im1 Do Q"),
        _stream(
            pixels,
            f"/Type /XObject /Subtype /Image /Width {side} /Height {side} "
            "/ColorSpace /DeviceGray /BitsPerComponent 8",
        ),
    ]
    path = Path(path)
    path.write_bytes(_assemble(objects))
    return path


def write_truncated_pdf(path: Path | str, pages: list[str]) -> Path:
    """Write the first half of a text PDF, as an interrupted download leaves it."""
    data = pdf_bytes(pages)
    path = Path(path)
    path.write_bytes(data[: len(data) // 2])
    return path


def _text_operators(text: str, number: int) -> bytes:
    """The content stream drawing ``text`` line by line from the top margin."""
    lines = _wrap(text)
    if len(lines) > LINES_PER_PAGE:
        raise ValueError(f"page {number} has {len(lines)} lines; at most {LINES_PER_PAGE} fit")
    out = [
        b"BT",
        f"/F1 {FONT_SIZE} Tf {LEADING} TL {MARGIN} {PAGE_HEIGHT - MARGIN} Td".encode(),
    ]
    for line in lines:
        out.append(b"(" + _literal(line) + b") Tj T*")
    out.append(b"ET")
    return b"\n".join(out)


def _wrap(text: str) -> list[str]:
    """Lines of ``text`` wrapped to the page; blank lines are kept, words never broken."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        wrapped = textwrap.wrap(
            paragraph, CHARS_PER_LINE, break_long_words=False, break_on_hyphens=False
        )
        lines.extend(wrapped or [""])
    return lines


def _literal(text: str) -> bytes:
    """``text`` as the inside of a PDF string literal (Latin-1 only)."""
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"pdfgen writes Latin-1 text only: {text[exc.start]!r}") from None
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _stream(data: bytes, extra: str = "") -> bytes:
    head = f"<< {extra} /Length {len(data)} >>".replace("<<  ", "<< ").encode()
    return head + b"\nstream\n" + data + b"\nendstream"


def _assemble(objects: list[bytes], *, info: int | None = None) -> bytes:
    """Number the objects from 1 (the first is the catalog) and add the xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # binary comment: "this file is binary"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    out += b"0000000000 65535 f \n"  # each entry is exactly 20 bytes
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    trailer = f"/Size {len(objects) + 1} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "")
    out += f"trailer\n<< {trailer} >>\nstartxref\n{xref}\n".encode() + b"%%EOF\n"
    return bytes(out)
