"""Hostile office files, e-books, notebooks and mail: each one a `failed` line, never a crash.

Truncated and garbage zip containers, zip bombs (refused from their declared
sizes, and while unpacking), password-protected office files, DRM e-books,
notebooks that are not JSON, mail that is not mail, and a missing optional
library: every one is reported with its reason while the good files are indexed.
"""

from __future__ import annotations

import random
import re
import sys
import zipfile
from pathlib import Path

import pytest
from formatgen import (
    WRITERS,
    write_docx,
    write_encrypted_office,
    write_epub,
    write_odt,
    write_pptx,
    write_xlsx,
)

from ragkit.errors import LoadError
from ragkit.loading import sheets
from ragkit.loading.containers import open_zip, read_member
from ragkit.loading.files import load_file


def _bomb(path: Path, megabytes: int) -> None:
    """A .docx-shaped zip whose one part unpacks to ``megabytes`` of zeros (compressed ~1000x)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as fh:
            block = bytes(1 << 20)
            for _ in range(megabytes):
                fh.write(block)


def _hostile_folder(folder: Path) -> dict[str, str]:
    """Hostile files in ``folder``: name -> the reason ingest must give."""
    good = folder / "good.docx"
    write_docx(good, "Zed")
    data = good.read_bytes()
    (folder / "truncated.docx").write_bytes(data[: len(data) // 2])
    (folder / "garbage.xlsx").write_bytes(bytes(range(256)) * 40)
    (folder / "text.pptx").write_bytes(b"this is not a presentation at all\n" * 10)
    _bomb(folder / "bomb.docx", 20)
    write_encrypted_office(folder / "locked.xlsx")
    write_odt(folder / "locked.odt", "Zed", manifest_extra=(
        '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x"/>'))
    _drm_epub(folder / "drm.epub")
    (folder / "notjson.ipynb").write_text('{"cells": [ oops', encoding="utf-8")
    (folder / "list.ipynb").write_text("[1, 2, 3]", encoding="utf-8")
    (folder / "random.eml").write_text("just some words\nwithout any header\n")
    (folder / "notes.mbox").write_text("Dear diary,\nFrom today on I write.\n")
    return {
        "truncated.docx": r"broken \.docx file \(truncated or damaged",
        "garbage.xlsx": r"broken \.xlsx file \(not a zip container",
        "text.pptx": r"broken \.pptx file \(not a zip container",
        "bomb.docx": r"refused: it unpacks to more than 8 MB \(21\.0 MB\) — probably a zip bomb",
        "locked.xlsx": r"password-protected file — save a copy without the password",
        "locked.odt": r"password-protected file — save a copy without the password",
        "drm.epub": r"DRM-protected e-book",
        "notjson.ipynb": r"not a notebook: not JSON",
        "list.ipynb": r"not a notebook: no list of cells",
        "random.eml": r"not an e-mail message",
        "notes.mbox": r"not an mbox mailbox",
    }


def _drm_epub(path: Path) -> None:
    write_epub(path, "Zed")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("META-INF/encryption.xml", (
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>'
            '<enc:CipherReference URI="OEBPS/text/one.xhtml"/></enc:CipherData>'
            "</enc:EncryptedData></encryption>"))


def test_each_hostile_file_is_one_failed_line_and_the_good_one_is_indexed(
    run, tmp_path, monkeypatch
):
    monkeypatch.setenv("RAGKIT_MAX_FILE_MB", "1")  # zip containers may unpack to 8 MB
    expected = _hostile_folder(tmp_path)
    result = run("ingest", str(tmp_path))
    assert result.exit_code == 5, result.output
    assert "1 added" in result.stdout and f"{len(expected)} failed" in result.stdout
    failed = [line for line in result.stderr.splitlines() if line.startswith("ragkit: failed")]
    assert len(failed) == len(expected), result.stderr
    for name, reason in expected.items():
        [line] = [ln for ln in failed if f"{name}:" in ln]
        assert re.search(reason, line), line
    assert "Traceback" not in result.output


def test_a_bomb_is_refused_from_its_declared_size_before_unpacking(tmp_path):
    _bomb(tmp_path / "b.docx", 40)
    with pytest.raises(LoadError, match=r"more than 8 MB \(41\.9 MB\)"):
        open_zip(tmp_path / "b.docx", (tmp_path / "b.docx").read_bytes(), 8_000_000)


def test_a_member_is_refused_while_unpacking_past_the_cap(tmp_path):
    path = tmp_path / "b.epub"
    _bomb(path, 3)
    archive = open_zip(path, path.read_bytes(), 10_000_000)
    with pytest.raises(LoadError, match="probably a zip bomb"):
        read_member(path, archive, "word/document.xml", 2_000_000)


def test_a_container_that_lies_about_its_sizes_is_broken_not_unpacked(tmp_path):
    """A central directory declaring 1 KB for 3 MB: zipfile stops at the declared size."""
    path = tmp_path / "liar.odt"
    write_odt(path, "Zed")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("Pictures/big.bin", bytes(3 << 20))
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")  # the last central directory entry: big.bin
    data[entry + 24:entry + 28] = (1024).to_bytes(4, "little")  # its uncompressed size
    path.write_bytes(bytes(data))
    archive = open_zip(path, bytes(data), 2_000_000)  # declares ~1 KB: passes the check
    with pytest.raises(LoadError, match=r"broken \.odt file \(Bad CRC-32"):
        read_member(path, archive, "Pictures/big.bin", 2_000_000)


@pytest.mark.parametrize(("module", "write", "package"), [
    ("docx", write_docx, "python-docx"),
    ("pptx", write_pptx, "python-pptx"),
    ("openpyxl", write_xlsx, "openpyxl"),
])
def test_a_missing_library_says_how_to_install_it(tmp_path, monkeypatch, module, write, package):
    path = tmp_path / f"f.{'xlsx' if module == 'openpyxl' else module}"
    write(path, "Zed")
    monkeypatch.setitem(sys.modules, module, None)  # import fails, as when not installed
    with pytest.raises(LoadError) as caught:
        load_file(path)
    assert caught.value.reason == (f"{path.suffix} files need {package} — "
                                   "pip install 'ragkit[formats]'")


def test_zip_level_encryption_is_password_protected(tmp_path):
    path = tmp_path / "z.docx"
    write_docx(path, "Zed")
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")
    data[entry + 8] |= 1  # the first member's "encrypted" flag in the central directory
    with pytest.raises(LoadError, match="password-protected"):
        open_zip(path, bytes(data), 10**8)


def test_an_old_binary_office_file_with_a_new_name_says_so(tmp_path):
    path = tmp_path / "old.docx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024))
    with pytest.raises(LoadError, match=r"an old binary Office file named \.docx — save it as"):
        load_file(path)


def test_a_spreadsheet_repeating_rows_and_cells_without_end_is_capped(tmp_path, monkeypatch):
    """ODF repeats: a row with text repeated a billion times, empty cells to the edge."""
    from formatgen import _odf

    monkeypatch.setattr(sheets, "MAX_ROWS", 50)
    row = ('<table:table-row table:number-rows-repeated="1000000000"><table:table-cell>'
           '<text:p>same</text:p></table:table-cell><table:table-cell '
           'table:number-columns-repeated="1000000000"/></table:table-row>')
    _odf(tmp_path / "r.ods", "application/vnd.oasis.opendocument.spreadsheet",
         f'<office:spreadsheet><table:table table:name="S">{row}</table:table>'
         "</office:spreadsheet>")
    [doc] = load_file(tmp_path / "r.ods")
    assert doc.text.startswith("# S > rows 2-50\n\nsame: same\n\n")  # row 1 is the header
    assert doc.text.count("same: same") == 49
    assert doc.text.endswith("ragkit read the first 50 rows of this sheet; the rest is not "
                             "indexed)")


def test_a_csv_field_beyond_the_csv_limit_is_a_broken_file(tmp_path):
    (tmp_path / "wide.csv").write_text("a,b\n" + "x" * 200_000 + ",1\n")
    with pytest.raises(LoadError, match=r"broken \.csv file \(field larger than field limit"):
        load_file(tmp_path / "wide.csv")


def test_a_csv_with_nul_bytes_is_skipped_as_binary(run, tmp_path):
    (tmp_path / "blob.csv").write_bytes(b"a,b\x00\x01\n" * 50)
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    result = run("ingest", str(tmp_path))
    assert re.search(r"skipped .*blob\.csv: binary file", result.stderr)
    assert "1 added" in result.stdout


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_damaged_files_of_every_format_load_or_fail_with_a_reason(tmp_path, suffix):
    """Bytes flipped, cut or repeated anywhere: a LoadError at worst, never another exception."""
    path = tmp_path / f"f{suffix}"
    WRITERS[suffix](path, "Zed")
    good = path.read_bytes()
    rng = random.Random(suffix)
    for _ in range(40):
        data = bytearray(good)
        at = rng.randrange(len(data))
        action = rng.choice(["flip", "cut", "splice"])
        if action == "flip":
            for i in range(at, min(at + rng.randint(1, 16), len(data))):
                data[i] = rng.randrange(256)
        elif action == "cut":
            del data[at:]
        else:
            data[at:at] = data[rng.randrange(len(data)):][:200]
        path.write_bytes(bytes(data))
        try:
            load_file(path)
        except LoadError as exc:
            assert exc.reason and "\n" not in exc.reason


def test_odf_counts_that_are_not_numbers_count_as_one(tmp_path):
    from formatgen import _odf

    _odf(tmp_path / "n.odt", "application/vnd.oasis.opendocument.text",
         '<office:text><text:h text:outline-level="top">Title</text:h>'
         '<text:p>a<text:s text:c="-5"/>b<text:s text:c="many"/>c</text:p></office:text>')
    assert load_file(tmp_path / "n.odt")[0].text == "# Title\n\na b c"


def test_an_entity_expansion_bomb_in_odf_xml_is_refused(tmp_path):
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    content = (f'<?xml version="1.0"?><!DOCTYPE r [{entities}]>'
               '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:'
               'office:1.0"><office:body><office:text>&a9;</office:text></office:body>'
               "</office:document-content>")
    with zipfile.ZipFile(tmp_path / "laughs.odt", "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", content)
    with pytest.raises(LoadError, match=r"broken \.odt file \(limit on input amplification"):
        load_file(tmp_path / "laughs.odt")
