"""A small PDF writer for tests and the demo corpus: real text layers, no dependencies.

Writes a valid PDF 1.4 file (catalog, page tree, one content stream per page,
Helvetica, cross-reference table) so pypdf extracts the words back.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

_LINE = 14  # points between lines
_WIDTH = 90  # characters per wrapped line


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content(text: str) -> bytes:
    """The drawing operators that write ``text`` top-down on a Letter page."""
    ops = ["BT", "/F1 11 Tf", f"{_LINE} TL", "56 740 Td"]
    for paragraph in text.split("\n"):
        for line in textwrap.wrap(paragraph, _WIDTH) or [""]:
            ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1", errors="replace")


def pdf_bytes(pages: list[str], *, title: str = "") -> bytes:
    """A PDF with one page per string (an empty string makes a page without text)."""
    n = len(pages)
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        ("<< /Type /Pages /Kids [" + " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
         + f"] /Count {n} >>").encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, text in enumerate(pages):
        stream = _content(text) if text else b""
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                       f"<< /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    if title:
        objects.append(f"<< /Title ({_escape(title)}) >>".encode())
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    info = f" /Info {len(objects)} 0 R" if title else ""
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


def write_pdf(path: Path, pages: list[str], *, title: str = "") -> Path:
    """Write a text PDF to ``path``."""
    Path(path).write_bytes(pdf_bytes(pages, title=title))
    return Path(path)


def write_encrypted_pdf(path: Path, pages: list[str], user_password: str) -> Path:
    """Write a PDF encrypted with ``user_password`` ('' = opens without a password)."""
    from io import BytesIO

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(BytesIO(pdf_bytes(pages))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    with open(path, "wb") as fh:
        writer.write(fh)
    return Path(path)


def write_image_only_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF whose pages have no text layer (like a scan)."""
    return write_pdf(path, [""] * pages)
