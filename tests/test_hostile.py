"""A hostile corpus, generated here, through ``ragkit ingest``: good files in, bad ones reported.

Every good file must be indexed; every bad one reported exactly once with its
reason; the exit status 5 ("completed with problems") must differ from success
(0) and from failure (1-4); a huge text file is streamed, so memory stays
bounded (measured in a subprocess), and a huge HTML file, which would have to
be read whole, is refused unread.
"""

from __future__ import annotations

import builtins
import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from ollama_server import FakeOllama, free_port
from pdfgen import write_encrypted_pdf, write_image_only_pdf, write_pdf, write_truncated_pdf

from ragkit import Index
from ragkit.chunking.text import chunk_text
from ragkit.chunking.units import ChunkerSettings
from ragkit.cli.main import cli
from ragkit.errors import BackendError, LoadError
from ragkit.ingest.pipeline import ingest
from ragkit.loading import files as loading
from ragkit.loading import kinds
from ragkit.loading.files import load_file
from ragkit.loading.paths import Keys
from ragkit.settings import DEFAULT_MAX_FILE_MB
from ragkit.store.local import Store

ROOT = Path(__file__).resolve().parents[1]
HUGE_MB = 52
DEPTH = 60


def write_huge(path: Path, megabytes: int = HUGE_MB) -> Path:
    """A text file of ``megabytes`` MB without a single line break."""
    block = b"lorem ipsum dolor sit amet " * 40_000  # ~1 MB
    with open(path, "wb") as fh:
        for _ in range(megabytes * 1_000_000 // len(block) + 1):
            fh.write(block)
        fh.truncate(megabytes * 1_000_000)
    return path


def hostile_corpus(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """The folder, its good files (name -> a phrase in it) and bad ones (name -> reason)."""
    root = tmp_path / "corpus"
    root.mkdir()
    good = {
        "notes with spaces.md": "# Spaces\n\nThe courier arrives on Tuesdays.\n",
        "naïve café 笔记.md": "# Café\n\nThe barista grinds beans at dawn.\n",
        "line\nbreak.txt": "A file whose name has a newline mentions zeppelins.\n",
    }
    for name, text in good.items():
        (root / name).write_text(text, encoding="utf-8")
    panda = "熊猫主要生活在中国四川的山区。它们每天吃大量的竹子。"
    (root / "gb18030.txt").write_bytes(panda.encode("gb18030"))
    good["gb18030.txt"] = "熊猫"
    (root / "utf16.txt").write_bytes("UTF-16 text about glaciers melting.".encode("utf-16"))
    good["utf16.txt"] = "glaciers"
    (root / "invalid-utf8.txt").write_bytes(b"Caf\xe9 menu: croissants and \xff espresso.\n")
    good["invalid-utf8.txt"] = "croissants"
    write_encrypted_pdf(root / "encrypted-open.pdf", ["An open secret about lighthouses."], "")
    good["encrypted-open.pdf"] = "lighthouses"
    not_utf8 = os.fsdecode(b"carte du caf\xe9.md")  # Latin-1 name: not valid UTF-8
    (root / not_utf8).write_text("# Carte\n\nThe llama orders a cortado.\n")
    good[not_utf8] = "cortado"
    for name, text in {"LICENSE": "Permission is granted to use this freely, kangaroos too.\n",
                       "Apache-2.0": "Apache License, version 2.0: wombats welcome.\n"}.items():
        (root / name).write_text(text)  # no extension, or one ragkit doesn't know: text inside
        good[name] = text.split()[-2].rstrip(",")
    deep = root.joinpath(*[f"d{i}" for i in range(DEPTH)])
    deep.mkdir(parents=True)
    (deep / "bottom.md").write_text("The deepest note talks about submarines.\n")
    good[str(Path(*[f"d{i}" for i in range(DEPTH)], "bottom.md"))] = "submarines"

    bad: dict[str, str] = {}
    (root / "empty.txt").write_bytes(b"")
    bad["empty.txt"] = "failed: empty file"
    (root / "binary.txt").write_bytes(bytes(range(256)) * 64)
    bad["binary.txt"] = "skipped: binary file"
    (root / "a.out").write_bytes(b"\x7fELF\x02\x01\x01\x00" * 64)
    bad["a.out"] = "skipped: binary file"
    (root / "photo.png").write_bytes(b"text, but the name says it never is")
    bad["photo.png"] = "skipped: unsupported file type .png"
    (root / "py.typed").write_bytes(b"")  # an empty marker file: nothing to say it is text
    bad["py.typed"] = "skipped: empty file"
    write_truncated_pdf(root / "truncated.pdf", ["one", "two", "three"])
    bad["truncated.pdf"] = "failed: truncated PDF (no %%EOF at the end) — fetch or export it again"
    write_encrypted_pdf(root / "encrypted-secret.pdf", ["Top secret."], "hunter2")
    bad["encrypted-secret.pdf"] = "failed: encrypted PDF — decrypt it first"
    write_image_only_pdf(root / "scanned.pdf")
    bad["scanned.pdf"] = "failed: PDF has no text layer (scanned?) — run OCR on it first"
    write_huge(root / "huge.html")  # HTML is parsed whole, so it is capped (text is streamed)
    bad["huge.html"] = (f"failed: file too large ({HUGE_MB}.0 MB; the limit for html files is "
                        f"{DEFAULT_MAX_FILE_MB} MB) — split it, or raise RAGKIT_MAX_FILE_MB")
    (root / "unreadable.txt").write_text("you cannot read me")
    (root / "unreadable.txt").chmod(0)
    bad["unreadable.txt"] = "failed: permission denied"

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "far.md").write_text("A note outside the folder mentions volcanoes.\n")
    (root / "outside-link.md").symlink_to(outside / "far.md")
    bad["outside-link.md"] = "skipped: symlink outside the folder (not followed)"
    (root / "loop").symlink_to(root)  # a loop back to the top: passed over silently
    (root / "d0" / "up").symlink_to(root / "d0")
    (root / "cycle-a.md").symlink_to(root / "cycle-b.md")  # a link cycle resolves to nothing
    (root / "cycle-b.md").symlink_to(root / "cycle-a.md")
    bad["cycle-a.md"] = "skipped: broken symlink"
    bad["cycle-b.md"] = "skipped: broken symlink"
    return root, good, bad


@pytest.fixture
def unreadable_as_root(monkeypatch):
    """chmod 000 does not stop root (CI often is root): make open() refuse as it would."""
    if os.geteuid() != 0:
        return
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(path, (str, os.PathLike)) and Path(path).name == "unreadable.txt":
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


def reported(stderr: str) -> dict[str, list[str]]:
    """Path -> every 'skipped/failed: reason' line the CLI printed for it."""
    out: dict[str, list[str]] = {}
    for line in stderr.splitlines():
        match = re.match(r"ragkit: (skipped|failed) (.+?): (.+)$", line)
        if match:
            out.setdefault(match.group(2), []).append(f"{match.group(1)}: {match.group(3)}")
    return out


def test_hostile_corpus_good_files_in_bad_ones_reported_once(env, tmp_path, unreadable_as_root):
    root, good, bad = hostile_corpus(tmp_path)
    result = CliRunner().invoke(cli, ["ingest", str(root), "--index", "h"],
                                catch_exceptions=False)
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output
    lines = reported(result.stderr)
    assert lines == {str(root / name): [reason] for name, reason in bad.items()}
    assert "\\xe9" in result.stderr or "caf" not in result.stderr  # shown escaped, if at all
    assert re.search(rf"{len(good)} added, .* {sum(r.startswith('skipped') for r in bad.values())}"
                     rf" skipped, {sum(r.startswith('failed') for r in bad.values())} failed",
                     result.stdout)
    with Index.open("h", backend="ollama") as index:
        assert sorted(index._store.files()) == sorted(str(root / name) for name in good)
        for name, phrase in good.items():
            hits = index.search(phrase, k=1, mode="keyword")
            assert hits and hits[0].path == str(root / name), name

    # Asked to, ingest follows the outside link; a re-run reports the same problems again.
    again = CliRunner().invoke(cli, ["ingest", str(root), "--index", "h", "--follow-symlinks"],
                               catch_exceptions=False)
    assert again.exit_code == 5
    del bad["outside-link.md"]
    assert reported(again.stderr) == {str(root / n): [r] for n, r in bad.items()}
    with Index.open("h", backend="ollama") as index:
        top = index.search("volcanoes", k=1, mode="keyword")[0]
        assert top.path == str(root / "outside-link.md")


def test_exit_status_tells_success_problems_and_failure_apart(env, tmp_path, ollama):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "ok.md").write_text("All fine here.\n")
    run = CliRunner()
    assert run.invoke(cli, ["ingest", str(folder)]).exit_code == 0
    (folder / "empty.md").write_text("")
    assert run.invoke(cli, ["ingest", str(folder)]).exit_code == 5
    ollama.fail("/api/embed", 400, times=1)
    (folder / "new.md").write_text("A new file to embed.\n")
    failed = run.invoke(cli, ["ingest", str(folder)])
    assert failed.exit_code == 3
    assert [ln for ln in failed.stderr.splitlines() if not ln.startswith("ragkit: ")] == [
        "error: Ollama returned HTTP 400: injected HTTP 400 — check the model name and the "
        "options given with -o (ingest stopped: nothing new was indexed; run the same command "
        "again to finish)"]


MEASURE = """
import json, resource, sys, time
import numpy, faiss, requests, pypdf  # what any ingest loads, before the baseline
from ragkit.cli.main import cli
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
try:
    cli(['ingest', *sys.argv[1:]], prog_name='ragkit')
except SystemExit as exc:
    code = exc.code
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({'code': code, 'growth_mb': (peak - base) / 1024,
                  'seconds': time.monotonic() - started}))
"""


def stored(home: Path, path: Path) -> list[tuple[int, int, str]]:
    """(start, end, text) of the chunks stored for ``path`` in the default index, in order."""
    db = sqlite3.connect(home / "default" / "chunks.sqlite")
    try:
        return db.execute("SELECT start, end, text FROM chunks WHERE path=? ORDER BY start",
                          (str(path),)).fetchall()
    finally:
        db.close()


@pytest.mark.slow  # about 30 s: 52 MB to chunk and 27,000 chunks to embed
def test_a_huge_single_line_file_is_streamed_with_bounded_memory(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    huge = write_huge(folder / "huge.txt")
    (folder / "small.md").write_text("Small files still get indexed.\n")
    home = tmp_path / "indexes"
    # 8-dimensional vectors: FAISS holds every vector of the index in memory (1.5 kB a chunk
    # at all-minilm's 384), which grows with the index, not with how a file is read.  Chunks of
    # 400 keep the index under the size where it is rebuilt as IVF at the end.
    with FakeOllama(dim=8) as server:
        child_env = {**os.environ, "PYTHONPATH": str(ROOT), "OLLAMA_HOST": server.url,
                     "RAGKIT_HOME": str(home), "RAGKIT_BACKEND": "ollama"}
        args = [str(folder), "--chunk-size", "400", "--chunk-overlap", "40"]
        done = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True,
                              text=True, env=child_env, cwd=str(ROOT), timeout=300)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["code"] == 0, done.stderr
    assert "2 added" in done.stdout
    # Read whole, the file alone would take 52 MB as bytes and 52 MB more as text.
    assert measured["growth_mb"] < 30, measured

    chunks = stored(home, huge)
    text = huge.read_bytes().decode("ascii")  # ASCII: character offsets are byte offsets
    assert chunks[0][0] == 0 and chunks[-1][1] == len(text.rstrip())
    window = loading.WINDOW_BYTES
    edge = next(c for c in chunks if c[0] < window < c[1])  # a chunk across the first window edge
    for start, end, chunk in (chunks[0], edge, chunks[-1]):
        assert chunk == text[start:end]
    assert all(chunk == text[start:end] for start, end, chunk in chunks)
    # The chunks cover the file, each one overlapping the one before.
    assert all(b[0] < a[1] < b[1] for a, b in itertools.pairwise(chunks))


def test_a_big_file_is_chunked_as_if_read_whole(env, tmp_path, monkeypatch):
    monkeypatch.setattr(kinds, "STREAM_ABOVE", 10_000)
    monkeypatch.setattr(loading, "WINDOW_BYTES", 1000)
    folder = tmp_path / "f"
    folder.mkdir()
    parts = ["# Pandas\n\n", "熊猫主要生活在中国四川的山区。它们每天吃大量的竹子。" * 40,
             "\n\n## Diet\r\n\r\n", "Bamboo, bamboo and more bamboo, naïvely eaten. " * 300]
    path = folder / "big.md"
    path.write_text("".join(parts), encoding="utf-8")
    result = CliRunner().invoke(cli, ["ingest", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = load_file(path)[0].text
    want = [(s.start, s.end, s.text) for s in chunk_text(text, ChunkerSettings(), markdown=True)]
    assert len(want) > 20
    assert stored(env, path) == want


def _vectors(texts):
    rng = np.random.default_rng(len(texts))
    rows = rng.normal(size=(len(texts), 8)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_big_file_cut_short_leaves_no_trace_and_a_rerun_finishes(tmp_path, monkeypatch):
    monkeypatch.setattr(kinds, "STREAM_ABOVE", 10_000)
    monkeypatch.setattr(loading, "WINDOW_BYTES", 4096)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.md").write_text("Before the big file.\n")
    (folder / "b.txt").write_text("A sentence about bamboo and pandas. " * 3000)  # 300 chunks
    (folder / "c.md").write_text("After the big file.\n")
    calls = []

    def dying(texts):
        calls.append(len(texts))
        if len(calls) == 6:  # the server dies in the middle of b.txt
            raise BackendError("server gone")
        return _vectors(texts)

    store = Store.create(tmp_path / "idx", {"embed_model": "m", "dimension": 8})
    with pytest.raises(BackendError):
        ingest(store, [folder], dying, chunker=ChunkerSettings(), batch_size=8, parallel=1)
    assert list(store.files()) == [str(folder / "a.md")]  # committed before b.txt began
    assert store.count() == 1 and len(store.search(_vectors(["q"])[0], 10)) == 1
    store.close()
    reopened = Store.open(tmp_path / "idx")
    assert reopened.count() == 1
    report = ingest(reopened, [folder], _vectors, chunker=ChunkerSettings(), batch_size=8)
    assert report.added == [str(folder / "b.txt"), str(folder / "c.md")]
    big = reopened.files()[str(folder / "b.txt")].chunks
    assert reopened.count() == report.total_chunks == big + 2
    assert reopened._vectors().ntotal == reopened.count()


def test_the_size_cap_is_configurable_and_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "medium.html"
    path.write_text("word " * 300_000)  # 1.5 MB
    monkeypatch.setenv("RAGKIT_MAX_FILE_MB", "1")
    with pytest.raises(LoadError, match=r"file too large \(1\.5 MB; the limit for html files is "
                                        r"1 MB\) — split it, or raise RAGKIT_MAX_FILE_MB"):
        load_file(path)
    text = tmp_path / "medium.txt"  # text-like files are never capped
    text.write_text("word " * 300_000)
    assert load_file(text)[0].text.startswith("word word")
    pdf = write_pdf(tmp_path / "doc.pdf", ["PDFs may be eight times bigger."])
    assert load_file(pdf)  # far below 8 MB
    monkeypatch.setenv("RAGKIT_MAX_FILE_MB", "2")
    assert load_file(path)[0].text.startswith("word word")


def test_a_file_name_that_is_not_utf8_is_indexed_shown_escaped_and_removed(
    env, tmp_path, monkeypatch, ollama
):
    folder = tmp_path / "docs"
    folder.mkdir()
    raw = bytes(folder) + b"/caf\xe9.md"  # a Latin-1 name, as old archives have
    with open(raw, "wb") as fh:
        fh.write(b"# Menu\n\nThe llama drinks espresso at dawn.\n")
    (folder / "ok.md").write_text("A plain file about giraffes.\n")
    monkeypatch.chdir(tmp_path)
    run = CliRunner()
    first = run.invoke(cli, ["ingest", "docs"])
    assert first.exit_code == 0, first.output
    assert "2 added" in first.stdout
    again = run.invoke(cli, ["ingest", "docs"])  # the stored name is recognised next time
    assert "0 added, 0 updated, 0 removed, 2 unchanged" in again.stdout

    found = run.invoke(cli, ["search", "llama espresso", "-k", "1", "--json"])
    assert found.exit_code == 0, found.output
    hit = json.loads(found.stdout)["hits"][0]  # valid JSON
    assert (hit["source"], hit["path"]) == ("docs/caf\\xe9.md", f"{folder}/caf\\xe9.md")
    listed = run.invoke(cli, ["search", "llama espresso", "-k", "1"])
    assert "  docs/caf\\xe9.md — Menu\n" in listed.stdout
    answer = run.invoke(cli, ["ask", "What does the llama drink?"])
    assert answer.exit_code == 0, answer.output
    assert "[1] docs/caf\\xe9.md" in answer.stdout
    as_json = run.invoke(cli, ["ask", "What does the llama drink?", "--json"])
    assert json.loads(as_json.stdout)["sources"][0]["source"] == "docs/caf\\xe9.md"
    # The model is shown the escaped name too (a tokenizer cannot encode the raw one).
    system = ollama.bodies("/api/chat")[-1]["messages"][0]["content"]
    assert "[1] caf\\xe9.md — Menu\n" in system
    with Index.open("default", backend="ollama") as index:  # the library keeps the real name
        top = index.search("llama espresso", k=1)[0]
        assert top.path == os.fsdecode(raw)
        assert Path(top.path).read_bytes().startswith(b"# Menu")

    os.remove(raw)
    gone = run.invoke(cli, ["ingest", "docs"])
    assert "0 added, 0 updated, 1 removed, 1 unchanged" in gone.stdout
    with Index.open("default", backend="ollama") as index:
        assert list(index._store.files()) == [str(folder / "ok.md")]


def _spelled_three_ways(tmp_path: Path) -> Path:
    """``docs`` with two files, ``x/`` (so ``x/../docs`` is docs) and ``link`` -> docs."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "x").mkdir()
    (docs / "a.md").write_text("Alpacas hum when they are content.\n")
    (docs / "b.md").write_text("Badgers dig setts under hedges.\n")
    (tmp_path / "link").symlink_to(docs)
    return docs


def test_a_file_has_one_key_however_its_folder_is_spelled(env, tmp_path, monkeypatch):
    docs = _spelled_three_ways(tmp_path)
    monkeypatch.chdir(tmp_path)
    with Index.open("t", create=True, backend="ollama") as index:
        for spelling in ("docs", "x/../docs", "link", f"{tmp_path}/link/", "./docs/a.md"):
            report = index.ingest(spelling)
            assert report.added == [] or spelling == "docs", spelling
        assert sorted(index._store.files()) == [str(docs / "a.md"), str(docs / "b.md")]
        assert len(index) == 2
        assert [h.source for h in index.search("alpacas hum", k=5) if "Alpacas" in h.text] == [
            "docs/a.md"]
        # --path in the user's spelling still filters.
        for pattern, want in (("link/", ["docs/a.md", "docs/b.md"]), ("link/b*", ["docs/b.md"])):
            hits = index.search("badgers", k=5, paths=[pattern])
            assert sorted(h.source for h in hits) == want, pattern

        (docs / "a.md").unlink()
        report = index.ingest("link")
        assert report.removed == [str(docs / "a.md")]
        answer = index.ask("What do alpacas do when they are content?")
        assert [hit.source for hit in answer.sources] == ["docs/b.md"]  # no ghost left to cite


def test_an_index_from_before_keys_were_resolved_converges_to_one_copy(
    env, tmp_path, monkeypatch, ollama
):
    docs = _spelled_three_ways(tmp_path)
    (docs / "c.md").write_text("Capybaras share their pools.\n")
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as old_ragkit:  # keyed files by their absolute, unresolved path
        old_ragkit.setattr(Keys, "key", lambda self, path: str(Path(path).absolute()))
        with Index.open("t", create=True, backend="ollama") as index:
            index.ingest("x/../docs")
            index.ingest("link")
            assert len(index._store.files()) == len(index) == 6  # the defect: two copies each
    (docs / "b.md").unlink()
    (docs / "c.md").write_text("Capybaras share their pools with birds.\n")
    embedded = len([r for r in ollama.requests if r[1] == "/api/embed"])
    with Index.open("t", backend="ollama") as index:
        report = index.ingest("docs")
        assert sorted(index._store.files()) == [str(docs / "a.md"), str(docs / "c.md")]
        assert len(index) == 2 and index._store._vectors().ntotal == 2
        # The old records were renamed, not embedded again: only the changed file was.
        assert (report.unchanged, report.updated, report.chunks_written) == (
            1, [str(docs / "c.md")], 1)
        assert len([r for r in ollama.requests if r[1] == "/api/embed"]) == embedded + 1
        hits = index.search("alpacas hum", k=5)
        assert sorted(h.path for h in hits) == [str(docs / "a.md"), str(docs / "c.md")]


def test_a_link_followed_out_of_the_folder_keeps_its_place_and_leaves_with_it(env, tmp_path):
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    (outside / "far.md").write_text("Narwhals live far to the north.\n")
    (docs / "near.md").write_text("Newts live nearby.\n")
    (docs / "far-link.md").symlink_to(outside / "far.md")
    with Index.open("t", create=True, backend="ollama") as index:
        index.ingest(docs, follow_symlinks=True)
        assert sorted(index._store.files()) == [str(docs / "far-link.md"), str(docs / "near.md")]
        (docs / "far-link.md").unlink()
        report = index.ingest(docs, follow_symlinks=True)
        assert report.removed == [str(docs / "far-link.md")]
        assert list(index._store.files()) == [str(docs / "near.md")]


def test_a_missing_path_is_reported_before_any_model_is_loaded(env, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["ingest", "nonexistent/"])
    assert result.exit_code == 1
    assert result.stderr == "error: nonexistent: no such file or directory — check the path\n"
    assert not env.exists()  # and no index was made


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "lots"])
def test_a_bad_max_file_mb_stops_ingest_with_one_line(env, tmp_path, monkeypatch, value):
    (tmp_path / "page.html").write_text("<p>Hello</p>")
    monkeypatch.setenv("RAGKIT_MAX_FILE_MB", value)
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "page.html")])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"error: RAGKIT_MAX_FILE_MB='{value}' is not a size in megabytes — set it to a number "
        "above 0 (e.g. 100), or unset it for 32"]
    assert not env.exists()


def test_a_file_left_out_now_leaves_the_index_but_an_unreadable_folder_drops_nothing(
    env, tmp_path, monkeypatch
):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "notes.txt").write_text("Otters hold hands while sleeping.\n")
    (docs / "sub" / "deep.md").write_text("Octopuses have three hearts.\n")
    with Index.open("t", create=True, backend="ollama") as index:
        index.ingest(docs)
        (docs / "notes.txt").write_bytes(b"\x00\x01binary now" * 100)  # skipped: binary file
        report = index.ingest(docs)
        assert [p.reason for p in report.skipped] == ["binary file"]
        assert list(index._store.files()) == [str(docs / "sub" / "deep.md")]

        real_scandir = os.scandir

        def refusing(path):  # type: ignore[no-untyped-def]
            if Path(path).name == "sub":  # chmod does not stop root, which CI often is
                raise PermissionError(13, "Permission denied")
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", refusing)
        report = index.ingest(docs)
        assert [(p.path, p.reason) for p in report.failed] == [
            (str(docs / "sub"), "permission denied")]
        assert list(index._store.files()) == [str(docs / "sub" / "deep.md")]  # kept for next time
