"""Real files in every structured format ragkit reads, for the tests.

Word, PowerPoint and Excel files are written by python-docx, python-pptx and
openpyxl themselves; EPUB and OpenDocument files are zip archives built here
as their specifications lay them out; mail with the email module.  Each
``write_*`` function hides ``marker`` deep in the file (never on its first
page, slide or sheet) and returns what a search for it must show:
(location, heading) as :func:`ragkit.loading.formats.location` gives them.
"""

from __future__ import annotations

import json
import zipfile
from email.message import EmailMessage
from pathlib import Path

FILLER = ("The committee reviewed the quarterly figures and agreed to meet again "
          "after the harvest festival to settle the remaining questions. ")


def write_docx(path: Path, marker: str) -> tuple[str, str]:
    import docx

    doc = docx.Document()
    doc.add_heading("Overview", level=1)
    for _ in range(6):
        doc.add_paragraph(FILLER * 3)
    table = doc.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Part", "Count"
    table.cell(1, 0).text, table.cell(1, 1).text = "Gasket", "12"
    doc.add_heading("Appendix", level=1)
    doc.add_paragraph(FILLER * 2)
    doc.add_heading("Spare parts", level=2)
    doc.add_paragraph(f"The spare valve is kept in locker {marker} behind the boiler.")
    doc.save(str(path))
    return path.name, "Appendix > Spare parts"


def write_pptx(path: Path, marker: str) -> tuple[str, str]:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    titles = ["Welcome", "Budget", "Roadmap", "Questions"]
    for n, title in enumerate(titles, 1):
        slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
        slide.shapes.title.text = title
        box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1))
        box.text_frame.text = FILLER
        if n == 2:
            shape = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1))
            shape.table.cell(0, 0).text, shape.table.cell(1, 0).text = "Item", "Laptop"
        if n == 3:
            slide.notes_slide.notes_text_frame.text = f"Mention the pilot with {marker} here."
    deck.save(str(path))
    return f"{path.name}:slide 3", "Roadmap"


def write_xlsx(path: Path, marker: str, rows: int = 60, hidden_at: int = 45) -> tuple[str, str]:
    import openpyxl

    book = openpyxl.Workbook()
    summary = book.active
    summary.title = "Summary"
    summary.append(["Total", 1234])
    sheet = book.create_sheet("Inventory")
    sheet.append(["Item", "Quantity", "Shelf"])
    for n in range(2, rows + 1):
        sheet.append([marker if n == hidden_at else f"part {n}", n * 3, f"S{n % 7}"])
    book.save(str(path))
    return f"{path.name}:Inventory", ""  # the heading is the row range (checked apart)


def write_csv(path: Path, marker: str, delimiter: str = ",") -> tuple[str, str]:
    lines = [delimiter.join(["city", "population", "note"])]
    for n in range(2, 201):
        note = marker if n == 150 else f"entry {n}"
        lines.append(delimiter.join([f"Town{n}", str(n * 1000), note]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f"{path.name}:rows", ""  # the row range holds line 150


def write_tsv(path: Path, marker: str) -> tuple[str, str]:
    return write_csv(path, marker, "\t")


def _zip(path: Path, members: dict[str, str | bytes], first: str = "") -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        if first:  # the mimetype of ODF and EPUB comes first, stored
            archive.writestr(zipfile.ZipInfo(first), members[first], zipfile.ZIP_STORED)
        for name, data in members.items():
            if name != first:
                archive.writestr(name, data)


def _xhtml(body: str, title: str = "Book") -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>{title}</title></head><body>{body}</body></html>")


def write_epub(path: Path, marker: str) -> tuple[str, str]:
    chapters = {
        "one.xhtml": ("Departure", _xhtml(f"<h1>Departure</h1><p>{FILLER * 4}</p>")),
        "two.xhtml": ("The Storm", _xhtml(f"<h1>The Storm</h1><p>{FILLER * 4}</p>")),
        # no h1: its title comes from the table of contents
        "three.xhtml": ("The Lighthouse", _xhtml(
            f"<p>{FILLER * 3}</p><p>The keeper's log was signed {marker} every night.</p>")),
    }
    items = "".join(f'<item id="c{n}" href="text/{name}" media-type="application/xhtml+xml"/>'
                    for n, name in enumerate(chapters))
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(len(chapters)))
    links = "".join(f'<li><a href="text/{name}">{title}</a></li>'
                    for name, (title, _) in chapters.items())
    members: dict[str, str | bytes] = {
        "mimetype": "application/epub+zip",
        "META-INF/container.xml": (
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/book.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>"),
        "OEBPS/book.opf": (
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Book</dc:title>'
            '</metadata><manifest><item id="nav" href="nav.xhtml" properties="nav" '
            f'media-type="application/xhtml+xml"/>{items}</manifest><spine>{spine}</spine>'
            "</package>"),
        "OEBPS/nav.xhtml": _xhtml(f'<nav><ol>{links}</ol></nav>'),
    }
    members |= {f"OEBPS/text/{name}": body for name, (_, body) in chapters.items()}
    _zip(path, members, "mimetype")
    return path.name, "The Lighthouse"


_ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"'
)


def _odf(path: Path, mimetype: str, body: str, manifest_extra: str = "") -> None:
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODF_NS} '
               f'office:version="1.3"><office:body>{body}</office:body>'
               "</office:document-content>")
    manifest = ('<?xml version="1.0"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                f'<manifest:file-entry manifest:full-path="content.xml">{manifest_extra}'
                "</manifest:file-entry></manifest:manifest>")
    _zip(path, {"mimetype": mimetype, "content.xml": content, "META-INF/manifest.xml": manifest},
         "mimetype")


def write_odt(path: Path, marker: str, manifest_extra: str = "") -> tuple[str, str]:
    filler = f"<text:p>{FILLER * 3}</text:p>" * 5
    body = (f'<office:text><text:h text:outline-level="1">Overview</text:h>{filler}'
            '<table:table table:name="T"><table:table-row><table:table-cell><text:p>Part'
            "</text:p></table:table-cell><table:table-cell><text:p>Count</text:p>"
            "</table:table-cell></table:table-row></table:table>"
            '<text:h text:outline-level="1">Appendix</text:h>'
            '<text:h text:outline-level="2">Spare parts</text:h>'
            f"<text:p>The spare valve is in locker<text:s/>{marker}<text:s text:c=\"2\"/>today."
            "</text:p></office:text>")
    _odf(path, "application/vnd.oasis.opendocument.text", body, manifest_extra)
    return path.name, "Appendix > Spare parts"


def write_odp(path: Path, marker: str) -> tuple[str, str]:
    def slide(title: str, text: str, notes: str = "") -> str:
        notes_xml = (f"<presentation:notes><draw:frame><draw:text-box><text:p>{notes}</text:p>"
                     "</draw:text-box></draw:frame></presentation:notes>") if notes else ""
        return (f'<draw:page draw:name="{title}"><draw:frame presentation:class="title">'
                f"<draw:text-box><text:p>{title}</text:p></draw:text-box></draw:frame>"
                f"<draw:frame><draw:text-box><text:p>{text}</text:p></draw:text-box></draw:frame>"
                f"{notes_xml}</draw:page>")

    body = ("<office:presentation>" + slide("Welcome", FILLER) + slide("Budget", FILLER)
            + slide("Roadmap", FILLER, f"Mention the pilot with {marker} here.")
            + "</office:presentation>")
    _odf(path, "application/vnd.oasis.opendocument.presentation", body)
    return f"{path.name}:slide 3", "Roadmap"


def write_ods(path: Path, marker: str) -> tuple[str, str]:
    def row(*cells: str, repeat: int = 1) -> str:
        xml = "".join(f"<table:table-cell><text:p>{c}</text:p></table:table-cell>" for c in cells)
        # files pad rows to the sheet's edge with one repeated empty cell
        xml += '<table:table-cell table:number-columns-repeated="16380"/>'
        return f'<table:table-row table:number-rows-repeated="{repeat}">{xml}</table:table-row>'

    rows = [row("Item", "Quantity")] + [
        row(marker if n == 45 else f"part {n}", str(n)) for n in range(2, 61)]
    body = ('<office:spreadsheet><table:table table:name="Summary">' + row("Total", "1234")
            + '</table:table><table:table table:name="Inventory">' + "".join(rows)
            + '<table:table-row table:number-rows-repeated="1048000"><table:table-cell '
              'table:number-columns-repeated="16384"/></table:table-row>'
            + "</table:table></office:spreadsheet>")
    _odf(path, "application/vnd.oasis.opendocument.spreadsheet", body)
    return f"{path.name}:Inventory", ""


_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
        "AAAABJRU5ErkJggg==")


def write_ipynb(path: Path, marker: str) -> tuple[str, str]:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Analysis\n", FILLER]},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "import math",
         "outputs": []},
        {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "plot()",
         "outputs": [{"output_type": "display_data", "metadata": {},
                      "data": {"image/png": _PNG, "text/plain": ["<Figure>"]}}]},
        {"cell_type": "markdown", "metadata": {}, "source": FILLER},
        {"cell_type": "code", "metadata": {}, "execution_count": 3,
         "source": ["total = sum(rows)\n", "print(total)"],
         "outputs": [{"output_type": "stream", "name": "stdout",
                      "text": [f"total is {marker}\n"]}]},
    ]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                "metadata": {"kernelspec": {"name": "python3", "language": "python"}}}
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return f"{path.name}:cell 5", ""


def email_message(subject: str, body: str, *, html: bool = False,
                  attachment: str = "") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Ann Example <ann@example.org>"
    message["To"] = "team@example.org"
    message["Date"] = "Mon, 02 Mar 2026 09:30:00 +0000"
    if html:
        message.set_content(f"<html><body><h1>Notes</h1><p>{body}</p></body></html>",
                            subtype="html")
    else:
        message.set_content(body)
    if attachment:
        message.add_attachment(b"%PDF-1.4 secret attachment words", maintype="application",
                               subtype="pdf", filename=attachment)
    return message


def write_eml(path: Path, marker: str) -> tuple[str, str]:
    body = FILLER * 8 + f" The gate code changes to {marker} on Friday."
    message = email_message("Site visit", body, html=True, attachment="plan.pdf")
    path.write_bytes(bytes(message))
    return path.name, "Site visit > Notes"  # the HTML body's h1 goes under the subject


def write_mbox(path: Path, marker: str) -> tuple[str, str]:
    messages = [email_message("Hello", FILLER), email_message("Lunch", FILLER + "\nFrom here on."),
                email_message("Invoice", FILLER + f" Reference {marker}.")]
    with open(path, "wb") as fh:
        for message in messages:
            raw = bytes(message).replace(b"\nFrom ", b"\n>From ")
            fh.write(b"From ann@example.org Mon Mar  2 09:30:00 2026\n" + raw + b"\n")
    return f"{path.name}:message 3", "Invoice"


#: suffix -> writer, for every structured format
WRITERS = {
    ".docx": write_docx, ".pptx": write_pptx, ".xlsx": write_xlsx, ".csv": write_csv,
    ".tsv": write_tsv,
    ".odt": write_odt, ".odp": write_odp, ".ods": write_ods, ".epub": write_epub,
    ".ipynb": write_ipynb, ".eml": write_eml, ".mbox": write_mbox,
}


def _cfb_entry(name: str, kind: int, start: int, size: int, child: int = -1,
               right: int = -1) -> bytes:
    import struct

    encoded = (name + "\0").encode("utf-16-le")
    return struct.pack("<64sHBBIII16sIQQIQ", encoded, len(encoded), kind, 1, 0xFFFFFFFF,
                       right & 0xFFFFFFFF, child & 0xFFFFFFFF, bytes(16), 0, 0, 0,
                       start & 0xFFFFFFFF, size)


def write_encrypted_office(path: Path) -> None:
    """What Office saves for a password-protected .docx/.xlsx/.pptx: a compound (CFB) file.

    A valid version-3 compound file, 512-byte sectors: the FAT, the directory, then
    the ``EncryptionInfo`` and ``EncryptedPackage`` streams (random bytes here:
    without the password, real ones read no better).
    """
    import os
    import struct

    end, free, fat_sector = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", bytes(16),
                         0x3E, 3, 0xFFFE, 9, 6, bytes(6), 0, 1, 1, 0, 4096, end, 0, end, 0)
    header += struct.pack("<I", 0) + b"\xff" * (4 * 108)  # DIFAT: the FAT is sector 0
    chains = [fat_sector, end]
    for first in (2, 10):  # two streams of 8 sectors each
        chains += [*range(first + 1, first + 8), end]
    fat = struct.pack(f"<{len(chains)}I", *chains) + b"\xff" * (512 - 4 * len(chains))
    directory = (_cfb_entry("Root Entry", 5, end, 0, child=1)
                 + _cfb_entry("EncryptionInfo", 2, 2, 4096, right=2)
                 + _cfb_entry("EncryptedPackage", 2, 10, 4096)
                 + b"\0" * 64 + struct.pack("<HBBIII", 0, 0, 0, free, free, free) + bytes(48))
    path.write_bytes(header + fat + directory + os.urandom(8192))
