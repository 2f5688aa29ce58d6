"""Office, e-book, notebook, mail and spreadsheet files: read into text with locations.

The files are real: written by python-docx, python-pptx and openpyxl, or
built as their specifications lay them out (:mod:`formatgen`).  The retrieval
test hides a marker deep in a file of every format and finds it with
``ragkit search`` against the fake Ollama server, in that file, at the right
place.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from formatgen import (
    WRITERS,
    email_message,
    write_csv,
    write_docx,
    write_eml,
    write_ipynb,
    write_mbox,
    write_pptx,
    write_xlsx,
)

from ragkit.chunking.text import chunk_text
from ragkit.loading import sheets
from ragkit.loading.files import iter_files, load_file
from ragkit.loading.formats import location
from ragkit.loading.kinds import SUPPORTED_SUFFIXES


def _marker(suffix: str) -> str:
    return f"Qx{suffix[1:]}zork"  # one word, unique to the file


@pytest.fixture
def shelf(tmp_path: Path) -> tuple[Path, dict[str, tuple[str, str]]]:
    """A folder with one file of every structured format, and each one's expected location."""
    folder = tmp_path / "shelf"
    folder.mkdir()
    expected = {}
    for suffix, write in WRITERS.items():
        name = {".pptx": "deck", ".xlsx": "budget"}.get(suffix, "doc")
        expected[suffix] = write(folder / f"{name}{suffix}", _marker(suffix))
    return folder, expected


def _rows_hold(heading: str, row: int) -> bool:
    match = re.fullmatch(r".*rows? (\d+)(?:-(\d+))?", heading)
    assert match, heading
    return int(match[1]) <= row <= int(match[2] or match[1])


def test_a_marker_deep_in_every_format_is_found_in_its_file_at_its_place(run, shelf):
    folder, expected = shelf
    result = run("ingest", str(folder))
    assert result.exit_code == 0, result.output
    assert f"{len(WRITERS)} added" in result.stdout and "0 failed" in result.stdout
    for suffix, (where, heading) in expected.items():
        hits = json.loads(run("search", _marker(suffix), "-k", "1", "--json").stdout)["hits"]
        hit = hits[0]
        assert _marker(suffix) in hit["text"], (suffix, hit)
        shown = location(Path(hit["source"]).name, hit["page"], hit["heading"])
        if suffix in (".xlsx", ".ods"):  # the sheet, and rows that hold row 45
            assert shown[0] == where and _rows_hold(shown[1], 45), (suffix, shown)
        elif suffix in (".csv", ".tsv"):  # the marker is on line 150
            assert shown[0].startswith(where) and _rows_hold(shown[0], 150), (suffix, shown)
        else:
            assert shown == (where, heading), suffix
        assert hit["location"].endswith(shown[0])


def test_citations_name_the_slide_and_the_sheet(run, tmp_path):
    write_pptx(tmp_path / "deck.pptx", "Zanzibar")
    write_xlsx(tmp_path / "budget.xlsx", "Quokka")
    assert run("ingest", str(tmp_path)).exit_code == 0
    search = run("search", "Zanzibar pilot", "-k", "1").stdout
    assert re.search(r"deck\.pptx:slide 3 — Roadmap$", search.splitlines()[0])
    answer = run("ask", "Which shelf holds the Quokka?").stdout
    assert re.search(r"^\[\d\] .*budget\.xlsx:Inventory$", answer, re.MULTILINE), answer


def test_the_formats_are_supported_and_found_by_the_walk(tmp_path):
    assert {".docx", ".pptx", ".xlsx", ".csv", ".tsv", ".odt", ".odp", ".ods", ".epub",
            ".ipynb", ".eml", ".mbox"} <= SUPPORTED_SUFFIXES
    for suffix, write in WRITERS.items():
        write(tmp_path / f"f{suffix}", "x")
    assert sorted(p.suffix for p in iter_files([tmp_path])) == sorted(WRITERS)


def test_docx_keeps_headings_paragraph_order_and_table_rows(tmp_path):
    path = tmp_path / "r.docx"
    write_docx(path, "Zed")
    [doc] = load_file(path)
    assert doc.page is None and doc.kind == "markdown"
    assert doc.text.startswith("# Overview\n\n")
    assert "Part | Count\nGasket | 12" in doc.text
    assert doc.text.index("# Appendix") < doc.text.index("## Spare parts") < doc.text.index("Zed")


def test_a_docx_paragraph_cannot_forge_a_heading(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Real", level=1)
    document.add_paragraph("# Forged heading")
    document.save(str(tmp_path / "f.docx"))
    [doc] = load_file(tmp_path / "f.docx")
    assert [s.heading for s in chunk_text(doc.text, markdown=True)] == ["Real"]


def test_pptx_gives_one_part_per_slide_with_tables_and_notes(tmp_path):
    write_pptx(tmp_path / "d.pptx", "Zed")
    docs = load_file(tmp_path / "d.pptx")
    assert [d.page for d in docs] == [1, 2, 3, 4]
    assert docs[1].text.startswith("# Budget") and "Item\nLaptop" in docs[1].text
    assert "Speaker notes:\nMention the pilot with Zed here." in docs[2].text


def test_sheet_rows_become_header_value_lines_in_blocks_with_their_rows(tmp_path):
    write_xlsx(tmp_path / "b.xlsx", "Zed", rows=200, hidden_at=150)
    summary, inventory = load_file(tmp_path / "b.xlsx")
    assert summary.text == "# Summary > row 1\n\nTotal | 1234"  # a header row alone
    spans = chunk_text(inventory.text, markdown=True)
    assert len(spans) > 3
    ranges = [re.fullmatch(r"Inventory > rows (\d+)-(\d+)", s.heading) for s in spans]
    assert all(ranges)
    assert ranges[0][1] == "2" and ranges[-1][2] == "200"  # every row, in order
    [hidden] = [s for s in spans if "Zed" in s.text]
    assert "Item: Zed\nQuantity: 450\nShelf: S3" in hidden.text
    assert _rows_hold(hidden.heading, 150)


def test_a_huge_sheet_is_cut_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sheets, "MAX_ROWS", 30)
    write_xlsx(tmp_path / "b.xlsx", "Zed", rows=100, hidden_at=90)
    text = load_file(tmp_path / "b.xlsx")[1].text
    assert "ragkit read the first 30 rows of this sheet; the rest is not indexed" in text
    assert "part 29" in text and "part 31" not in text and "Zed" not in text


def test_csv_dialect_is_sniffed_and_encodings_read_as_for_text(tmp_path):
    rows = "name;city\nAnn;Köln\nBo;Zürich\n"
    (tmp_path / "semi.csv").write_bytes(b"\xff\xfe" + rows.encode("utf-16-le"))
    [doc] = load_file(tmp_path / "semi.csv")
    assert doc.text == "# rows 2-3\n\nname: Ann\ncity: Köln\n\nname: Bo\ncity: Zürich"
    assert location("semi.csv", None, "rows 2-3") == ("semi.csv:rows 2-3", "")


def test_a_big_csv_is_read_in_windows_not_streamed_as_text(tmp_path, monkeypatch):
    from ragkit.loading import files, kinds

    write_csv(tmp_path / "t.csv", "Zed")
    monkeypatch.setattr(files, "WINDOW_BYTES", 64)  # a window ends mid-line, mid-row
    assert not kinds.streams(tmp_path / "t.csv", 10**9)
    [doc] = load_file(tmp_path / "t.csv")
    assert "city: Town150\npopulation: 150000\nnote: Zed" in doc.text


def test_a_notebook_reads_cells_as_markdown_code_and_text_outputs_never_base64(tmp_path):
    write_ipynb(tmp_path / "n.ipynb", "Zed")
    docs = load_file(tmp_path / "n.ipynb")
    assert [d.page for d in docs] == [1, 2, 3, 4, 5]
    code = "```python\ntotal = sum(rows)\nprint(total)\n```"
    assert docs[4].text == code + "\n\n```\ntotal is Zed\n```"
    assert "<Figure>" in docs[2].text
    assert not any("iVBOR" in d.text for d in docs)


def test_an_email_lists_its_attachments_and_reads_its_html_body(tmp_path):
    write_eml(tmp_path / "m.eml", "Zed")
    [doc] = load_file(tmp_path / "m.eml")
    assert doc.text.startswith("# Site visit\n\nFrom: Ann Example <ann@example.org>\n"
                               "To: team@example.org\nDate: Mon, 02 Mar 2026 09:30:00 +0000")
    assert "## Notes" in doc.text and "<p>" not in doc.text and "Zed on Friday" in doc.text
    assert doc.text.endswith("Attachments (not indexed): plan.pdf")
    assert "secret attachment words" not in doc.text


def test_an_mbox_gives_one_part_per_message_with_from_lines_unquoted(tmp_path):
    write_mbox(tmp_path / "in.mbox", "Zed")
    docs = load_file(tmp_path / "in.mbox")
    assert [(d.page, d.text.splitlines()[0]) for d in docs] == [
        (1, "# Hello"), (2, "# Lunch"), (3, "# Invoice")]
    assert "\nFrom here on." in docs[1].text
    assert location("in.mbox", 3, "Invoice") == ("in.mbox:message 3", "Invoice")


def test_a_plain_text_email_body_is_kept_and_cannot_forge_headings(tmp_path):
    message = email_message("Plans", "# not a heading\nsee you")
    (tmp_path / "p.eml").write_bytes(bytes(message))
    [doc] = load_file(tmp_path / "p.eml")
    assert [s.heading for s in chunk_text(doc.text, markdown=True)] == ["Plans"]
    assert "see you" in doc.text
