"""Loading: encodings, binaries, PDFs good and bad, HTML, and walking folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pdfgen import (
    pdf_bytes,
    write_encrypted_pdf,
    write_image_only_pdf,
    write_pdf,
    write_truncated_pdf,
)

from ragkit.errors import LoadError, UsageError
from ragkit.loading.decoding import decode_text
from ragkit.loading.files import Document, Skipped, check_roots, iter_files, load_file, open_text
from ragkit.loading.kinds import SUPPORTED_SUFFIXES, max_file_bytes, streams
from ragkit.loading.readers import html_to_text

CHINESE = "# 简介\n\n熊猫主要生活在中国四川的山区。它们每天吃大量的竹子。\n"


def reason(exc: pytest.ExceptionInfo[LoadError]) -> str:
    return exc.value.reason


# --- decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"plain ascii", "plain ascii"),
        ("naïve café".encode(), "naïve café"),
        (b"\xef\xbb\xbf" + "naïve café".encode(), "naïve café"),
        (b"\xff\xfe" + "熊猫 and pandas".encode("utf-16-le"), "熊猫 and pandas"),
        (b"\xfe\xff" + "熊猫 and pandas".encode("utf-16-be"), "熊猫 and pandas"),
        (CHINESE.encode("gb18030"), CHINESE),
        ("繁體中文也可以。".encode("gb18030"), "繁體中文也可以。"),
    ],
    ids=["ascii", "utf8", "utf8-bom", "utf16-le-bom", "utf16-be-bom", "gb18030", "gb18030-trad"],
)
def test_decode_text_encodings(data: bytes, text: str) -> None:
    assert decode_text(data) == text


def test_invalid_utf8_that_is_not_gb18030_gets_replacement_characters() -> None:
    assert decode_text(b"Caf\xe9 au lait, cr\xe8me br\xfbl\xe9e.\n") == (
        "Caf\ufffd au lait, cr\ufffdme br\ufffdl\ufffde.\n"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"text then a NUL\x00 byte",
        "no BOM".encode("utf-16-le"),
        bytes(range(128, 256)) * 4,  # no NULs, but nothing decodes
    ],
    ids=["png", "nul", "utf16-without-bom", "high-bytes"],
)
def test_decode_text_rejects_binary(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"^binary file$"):
        decode_text(data)


def test_nul_after_the_first_8_kib_is_not_sniffed() -> None:
    assert decode_text(b"a" * 9000 + b"\x00").startswith("aaa")


# --- text files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.md", "markdown"),
        ("a.MARKDOWN", "markdown"),
        ("a.txt", "text"),
        ("a.rst", "rst"),
        ("a.py", "code"),
        ("a.yaml", "code"),
    ],
)
def test_load_text_kinds(tmp_path: Path, name: str, kind: str) -> None:
    path = tmp_path / name
    path.write_text("hello world\n", encoding="utf-8")
    assert load_file(path) == [Document(path, None, "hello world\n", kind)]


def test_supported_suffixes_cover_the_documented_types() -> None:
    documented = ".txt .md .markdown .rst .html .htm .pdf .py .js .ts .go .rs .java .c .h .cpp"
    documented += " .json .yaml .yml .toml .ini .cfg .csv .tex .sh"
    assert set(documented.split()) <= SUPPORTED_SUFFIXES


def test_load_utf16_file_and_normalize_newlines(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\xff\xfe" + "line one\r\nline two\r".encode("utf-16-le"))
    assert load_file(path)[0].text == "line one\nline two\n"


def test_load_gb18030_markdown(tmp_path: Path) -> None:
    path = tmp_path / "panda.md"
    path.write_bytes(CHINESE.encode("gb18030"))
    assert load_file(path)[0].text == CHINESE


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b" \n\t\n", "empty file"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00", "binary file"),
        ("tool.exe", b"MZ\x90\x00", "unsupported file type .exe"),
        ("COPYING", b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary file"),
        ("libz.so.1", b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary file"),
        ("data.v2", bytes(range(1, 32)) * 40, "binary file"),
    ],
)
def test_load_refuses_with_a_reason(tmp_path: Path, name: str, data: bytes, why: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(LoadError) as exc:
        load_file(path)
    assert reason(exc) == why
    assert str(exc.value) == f"{path}: {why}"


TEXT_BY_CONTENT = {  # names that say nothing about the content (Debian's licence files among them)
    "README": "Read me first.\n",
    "LICENSE": "Permission is hereby granted, free of charge.\n",
    "copyright": "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n",
    "Apache-2.0": "Apache License\nVersion 2.0, January 2004\n",
    "GPL-3": "GNU GENERAL PUBLIC LICENSE\n\f\nVersion 3\n",
    "notes.weird": "# not markdown to ragkit\n",
    "changelog.zh": "熊猫主要生活在中国四川的山区。\n",
}


@pytest.mark.parametrize("name", sorted(TEXT_BY_CONTENT))
def test_files_without_a_known_extension_are_text_if_their_content_is(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    encoding = "gb18030" if name.endswith(".zh") else "utf-8"
    path.write_bytes(TEXT_BY_CONTENT[name].encode(encoding))
    assert load_file(path) == [Document(path, None, TEXT_BY_CONTENT[name], "text")]
    assert list(iter_files([path])) == [path]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file or directory"):
        load_file(tmp_path / "gone.md")


# --- PDF ---------------------------------------------------------------------------------


def test_pdf_one_document_per_page(tmp_path: Path) -> None:
    pages = [
        "The espresso machine must be descaled every month with citric acid.",
        "The warranty covers the pump for two years from the date of purchase.",
        "Call (555) 0100 for service; paths look like C:\\coffee\\manual. Crème brûlée.",
    ]
    path = write_pdf(tmp_path / "manual.pdf", pages)
    docs = load_file(path)
    assert [(d.page, d.kind, d.path) for d in docs] == [
        (1, "pdf", path),
        (2, "pdf", path),
        (3, "pdf", path),
    ]
    assert [d.text.split() for d in docs] == [p.split() for p in pages]


def test_pdf_long_page_wraps_and_keeps_every_word(tmp_path: Path) -> None:
    text = " ".join(f"word{i}" for i in range(300)) + "\n\nA second paragraph."
    docs = load_file(write_pdf(tmp_path / "long.pdf", [text]))
    assert docs[0].text.split() == text.split()
    assert docs[0].text.count("\n") > 10  # wrapped into lines


def test_pdf_pages_without_text_are_left_out_and_numbers_kept(tmp_path: Path) -> None:
    docs = load_file(write_pdf(tmp_path / "gaps.pdf", ["first page", "", "third page"]))
    assert [(d.page, d.text.strip()) for d in docs] == [(1, "first page"), (3, "third page")]


def test_pdfgen_too_many_lines_for_a_page(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="page 1 has"):
        write_pdf(tmp_path / "x.pdf", ["line\n" * 100])


def test_pdfgen_title(tmp_path: Path) -> None:
    from pypdf import PdfReader

    path = write_pdf(tmp_path / "t.pdf", ["x"], title="Handbook (v1)")
    assert PdfReader(path).metadata.title == "Handbook (v1)"


def test_encrypted_pdf_with_empty_user_password_opens(tmp_path: Path) -> None:
    path = write_encrypted_pdf(tmp_path / "locked.pdf", ["Readable by anyone."], "")
    assert [d.text.strip() for d in load_file(path)] == ["Readable by anyone."]


def test_encrypted_pdf_with_a_password_is_refused(tmp_path: Path) -> None:
    path = write_encrypted_pdf(tmp_path / "locked.pdf", ["Top secret."], "hunter2")
    with pytest.raises(LoadError) as exc:
        load_file(path)
    assert reason(exc) == "encrypted PDF — decrypt it first"


def test_image_only_pdf(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as exc:
        load_file(write_image_only_pdf(tmp_path / "scan.pdf"))
    assert reason(exc) == "PDF has no text layer (scanned?) — run OCR on it first"


def test_truncated_pdf(tmp_path: Path) -> None:
    path = write_truncated_pdf(tmp_path / "half.pdf", ["one", "two", "three"])
    with pytest.raises(LoadError) as exc:
        load_file(path)
    assert reason(exc).startswith("truncated PDF")


@pytest.mark.parametrize(
    ("data", "start"),
    [
        (b"%PDF-1.4\nnothing here at all\n%%EOF\n", "broken PDF ("),
        (pdf_bytes(["x"]).replace(b"/Pages 2 0 R >>", b"/Pages 9 0 R >>"), "broken PDF ("),
        (b"<html>not a pdf</html>", "not a PDF"),
    ],
    ids=["no-xref", "dangling-page-tree", "not-pdf"],
)
def test_broken_pdf_gives_a_short_reason(tmp_path: Path, data: bytes, start: str) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(data)
    with pytest.raises(LoadError) as exc:
        load_file(path)
    assert reason(exc).startswith(start)
    assert "\n" not in reason(exc) and len(reason(exc)) < 120


# --- HTML --------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><title>Ignored title</title>
<style>body { color: red }</style>
<script>var secret = "do not index";</script></head>
<body>
  <h1>User   <em>guide</em></h1>
  <p>Install with
     pip &amp; friends.</p>
  <h2>From source</h2>
  <ul><li>Clone it</li><li>Build it</li></ul>
  <pre>def main():
    return 1</pre>
  <h3></h3>
</body></html>
"""


def test_html_headings_become_markdown(tmp_path: Path) -> None:
    path = tmp_path / "guide.html"
    path.write_text(PAGE, encoding="utf-8")
    [doc] = load_file(path)
    assert doc.kind == "html"
    assert doc.text == (
        "# User guide\n\n"
        "Install with pip & friends.\n\n"
        "## From source\n\n"
        "- Clone it\n"
        "- Build it\n\n"
        "def main():\n    return 1"
    )


def test_html_title_is_the_heading_when_there_is_no_h1() -> None:
    html = "<title>Release notes</title><h2>1.0</h2><p>First.</p>"
    assert html_to_text(html) == "# Release notes\n\n## 1.0\n\nFirst."


def test_html_without_text(tmp_path: Path) -> None:
    path = tmp_path / "empty.htm"
    path.write_text("<html><script>x = 1</script></html>")
    with pytest.raises(LoadError, match="no text in the HTML"):
        load_file(path)


# --- walking -----------------------------------------------------------------------------


def walk(*paths: Path, root: Path, follow: bool = False) -> list[str]:
    """The walk as strings relative to ``root``: 'file' or 'file: reason'."""
    out = []
    for item in iter_files(paths, follow_symlinks=follow):
        if isinstance(item, Skipped):
            out.append(f"{item.path.relative_to(root)}: {item.reason}")
        else:
            out.append(str(item.relative_to(root)))
    return out


def test_walk_sorted_skips_hidden_and_tool_folders_reports_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [
        "b.md", "a.txt", "sub/c.rst", "sub/d.pdf", ".hidden.md", ".cache/x.md", ".git/HEAD.txt",
        "node_modules/m/index.js", "__pycache__/m.py", ".venv/lib/site.py", "tool.exe",
        "LICENSE", "Apache-2.0", "pic.txt", "photo.png", "backup.tar.gz", "a.out", "py.typed",
    ]  # fmt: skip
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"hello\n")
    (tmp_path / "pic.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "a.out").write_bytes(b"\x7fELF\x02\x01\x01\x00" * 8)
    (tmp_path / "py.typed").write_bytes(b"")
    (tmp_path / "sub" / "d.pdf").write_bytes(pdf_bytes(["x"]))
    opened: list[str] = []
    real_open = open

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    assert walk(tmp_path, root=tmp_path) == [
        "Apache-2.0",
        "LICENSE",
        "a.out: binary file",
        "a.txt",
        "b.md",
        "backup.tar.gz: unsupported file type .gz",
        "photo.png: unsupported file type .png",
        "pic.txt: binary file",
        "py.typed: empty file",
        "sub/c.rst",
        "sub/d.pdf",
        "tool.exe: unsupported file type .exe",
    ]
    # A name that says the file is never text is enough: such files are not read.
    assert not {"photo.png", "backup.tar.gz", "tool.exe"} & set(opened)


def test_walk_single_files_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / ".notes.md").write_text("named explicitly, so not skipped")
    (tmp_path / "x.bin").write_bytes(b"\x00")
    assert walk(tmp_path / ".notes.md", tmp_path / "x.bin", root=tmp_path) == [
        ".notes.md",
        "x.bin: unsupported file type .bin",
    ]
    with pytest.raises(LoadError) as exc:
        list(iter_files([tmp_path / ".notes.md", tmp_path / "nope"]))
    assert reason(exc) == "no such file or directory — check the path"
    with pytest.raises(LoadError) as exc:
        check_roots([tmp_path, os.fsdecode(bytes(tmp_path) + b"/caf\xe9")])
    assert str(exc.value) == f"{tmp_path}/caf\\xe9: no such file or directory — check the path"


def test_walk_does_not_repeat_overlapping_roots(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("a")
    paths = (tmp_path, tmp_path / "sub", tmp_path / "sub" / "a.md")
    assert walk(*paths, root=tmp_path) == ["sub/a.md"]


def test_symlink_loop_terminates(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "a").mkdir(parents=True)
    (root / "a" / "note.md").write_text("x")
    (root / "a" / "up").symlink_to(root)  # docs/a/up -> docs
    (root / "a" / "self").symlink_to(root / "a")
    for follow in (False, True):
        assert walk(root, root=root, follow=follow) == ["a/note.md"]


def test_symlink_outside_is_reported_unless_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "docs", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (outside / "far.md").write_text("far away")
    (outside / "back").symlink_to(root)  # followed, it leads back in: no loop, no repeat
    (outside / "loop").symlink_to(outside)
    (root / "here.md").write_text("x")
    (root / "link").symlink_to(outside)
    (root / "file-link.md").symlink_to(outside / "far.md")
    (root / "dangling.md").symlink_to(tmp_path / "missing.md")
    assert walk(root, root=root) == [
        "dangling.md: broken symlink",
        "file-link.md: symlink outside the folder (not followed)",
        "here.md",
        "link: symlink outside the folder (not followed)",
    ]
    assert walk(root, root=root, follow=True) == [
        "dangling.md: broken symlink",
        "file-link.md",
        "here.md",
    ]  # link/far.md is the same file as file-link.md: yielded once


def test_symlink_inside_the_folder_is_indexed_once(tmp_path: Path) -> None:
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "guide.md").write_text("x")
    (tmp_path / "latest").symlink_to(tmp_path / "v2")
    (tmp_path / "alias.md").symlink_to(tmp_path / "v2" / "guide.md")
    assert walk(tmp_path, root=tmp_path) == ["v2/guide.md"]


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    assert walk(tmp_path, root=tmp_path) == ["pipe.txt: not a regular file"]


def test_permission_errors_are_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated, because chmod does not stop root, which CI often is.
    (tmp_path / "locked").mkdir()
    (tmp_path / "secret.md").write_text("x")
    real_scandir, real_open = os.scandir, open

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    def fake_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path).name == "secret.md":
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr("builtins.open", fake_open)
    assert walk(tmp_path, root=tmp_path) == [
        "locked: permission denied",
        "secret.md: permission denied",
    ]
    assert all(item.unreadable for item in iter_files([tmp_path]))  # failures, not choices
    monkeypatch.setattr(Path, "read_bytes", lambda self: fake_open(self))
    with pytest.raises(LoadError) as exc:
        load_file(tmp_path / "secret.md")
    assert reason(exc) == "permission denied"


def test_the_demo_corpus_loads_completely() -> None:
    corpus = Path(__file__).resolve().parents[1] / "corpora" / "guide"
    items = list(iter_files([corpus]))
    assert not [i for i in items if isinstance(i, Skipped)]
    names = sorted(str(Path(p).relative_to(corpus)) for p in items)
    assert names == [
        "asking-questions.md", "backends.md", "getting-started.md", "handbook.pdf",
        "indexing.md", "troubleshooting.md", "zh/快速入门.md",
    ]  # fmt: skip
    pages = load_file(corpus / "handbook.pdf")
    assert [d.text.split("\n", 1)[0] for d in pages] == [
        "Index layout on disk",
        "Exit statuses",
        "Performance tips",
        "Backing up and moving indexes",
    ]


def test_a_very_deep_tree_does_not_exhaust_the_stack(tmp_path: Path) -> None:
    folder = tmp_path
    for _ in range(1100):  # deeper than Python's recursion limit
        folder = folder / "d"
        folder.mkdir()
    (folder / "deep.md").write_text("x")
    try:
        assert [p.name for p in iter_files([tmp_path]) if isinstance(p, Path)] == ["deep.md"]
    finally:  # shutil.rmtree (pytest's clean-up) recurses too deep for this tree
        (folder / "deep.md").unlink()
        while folder != tmp_path:
            folder.rmdir()
            folder = folder.parent


# --- big files: read in windows ----------------------------------------------------------

ENCODED = {
    "utf8": "naïve café 熊猫🐼 line\r\nnext\rlast\n".encode() * 5,
    "utf8-bom": b"\xef\xbb\xbf" + "été 熊猫\r\n".encode() * 5,
    "utf16-le": "\ufeff熊猫 and pandas🐼\r\n".encode("utf-16-le") * 5,
    "utf16-be": "\ufeff熊猫 and pandas🐼\n".encode("utf-16-be") * 5,
    "gb18030": (CHINESE * 5).encode("gb18030"),
    "invalid-utf8": b"Caf\xe9 au lait, cr\xe8me \xff br\xfbl\xe9e.\r\n" * 5,
}


@pytest.mark.parametrize("window", [1, 2, 3, 5, 16])
@pytest.mark.parametrize("name", list(ENCODED))
def test_windows_join_up_to_the_whole_text(tmp_path: Path, name: str, window: int) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_bytes(ENCODED[name])
    windows = list(open_text(path, window=window))
    assert len(windows) > 3  # multi-byte characters and CRLFs straddle the window edges
    assert "".join(windows) == load_file(path)[0].text


@pytest.mark.parametrize(
    ("data", "why"), [(b"", "empty file"), (b"\x89PNG\r\n\x1a\n\x00\x00", "binary file")])
def test_windows_refuse_a_bad_file_before_reading_it(tmp_path: Path, data: bytes, why: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(LoadError) as exc:
        open_text(path)
    assert reason(exc) == why


def test_only_big_text_like_files_are_streamed(tmp_path: Path) -> None:
    big = 50_000_000
    assert streams(tmp_path / "log.txt", big) and streams(tmp_path / "notes.md", big)
    assert streams(tmp_path / "main.py", big)
    assert not streams(tmp_path / "page.html", big) and not streams(tmp_path / "doc.pdf", big)
    assert not streams(tmp_path / "small.txt", 1000)
    assert streams(tmp_path / "syslog.1", big) and streams(tmp_path / "NEWS", big)
    assert not streams(tmp_path / "movie.mp4", big)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0", "lots", "1e400"])
def test_a_bad_max_file_mb_is_a_usage_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGKIT_MAX_FILE_MB", value)
    with pytest.raises(UsageError, match=r"^RAGKIT_MAX_FILE_MB='.*' is not a size in megabytes — "):
        max_file_bytes("html")


def test_max_file_mb_sets_the_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGKIT_MAX_FILE_MB", " 0.5 ")
    assert (max_file_bytes("html"), max_file_bytes("pdf")) == (500_000, 4_000_000)
    monkeypatch.setenv("RAGKIT_MAX_FILE_MB", "")
    assert max_file_bytes("html") == 32_000_000
