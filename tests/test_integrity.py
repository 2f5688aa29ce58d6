"""What ragkit does with index files it did not write that way: one line and exit 4, never a crash.

A manifest that fails its schema, a database that is empty or damaged, a FAISS
cache of another dimension: through the CLI, each is one ``error:`` line with
the documented exit status and the way to fix it; a damaged cache is rebuilt
from SQLite.  Commands that only read never change an index's files.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ragkit.store.local import Store

READERS = (["search", "backups"], ["ask", "When do backups run?"], ["indexes", "info"])


@pytest.fixture
def index(run, docs, env) -> Path:
    result = run("ingest", str(docs))
    assert result.exit_code == 0, result.output
    return env / "default"


def error_line(result) -> str:
    assert "Traceback" not in result.output and "internal error" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if not ln.startswith("ragkit: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def contents(folder: Path) -> dict[str, bytes]:
    """The index's own files (SQLite's -wal/-shm companions aside)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def edit_manifest(folder: Path, **fields) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, value in fields.items():
        if value is ...:
            del manifest[key]
        else:
            manifest[key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))


def sql(folder: Path, statement: str, *args) -> None:
    db = sqlite3.connect(folder / "chunks.sqlite")
    with db:
        db.execute(statement, args)
    db.close()


HINT = "— rebuild it with `ragkit ingest PATH --index default --rebuild`"


@pytest.mark.parametrize(("fields", "detail"), [
    ({"chunker": ...}, "chunker is missing"),
    ({"chunker": "abc"}, "chunker must be an object with size and overlap, got 'abc'"),
    ({"chunker": {"size": 100, "overlap": 100}},
     "chunker must have a positive whole size and an overlap from 0 to below the size, got "
     "{'size': 100, 'overlap': 100}"),
    ({"dimension": ...}, "dimension is missing"),
    ({"dimension": "abc"}, "dimension must be a whole number from 1 to 65536, got 'abc'"),
    ({"dimension": 0}, "dimension must be a whole number from 1 to 65536, got 0"),
    ({"dimension": -1}, "dimension must be a whole number from 1 to 65536, got -1"),
    ({"dimension": 10**12}, "dimension must be a whole number from 1 to 65536, got 1000000000000"),
    ({"dimension": 384.5}, "dimension must be a whole number from 1 to 65536, got 384.5"),
    ({"query_prefix": 5}, "query_prefix must be a string, got 5"),
    ({"embed_model": None}, "embed_model must be a model name, got None"),
    ({"format_version": "1"}, "format_version must be a positive whole number, got '1'"),
])
def test_a_manifest_that_fails_its_schema_is_one_line_and_exit_4(run, index, docs, fields,
                                                                 detail):
    edit_manifest(index, **fields)
    before = contents(index)
    for args in [*READERS, ["ingest", str(docs)]]:
        result = run(*args)
        assert result.exit_code == 4, (args, result.output)
        assert error_line(result) == (
            f"error: index file {index / 'manifest.json'} is unreadable ({detail}) {HINT}")
    doctor = run("doctor")
    assert "Traceback" not in doctor.output and "internal error" not in doctor.output
    assert f"[ERR] index default: index file {index / 'manifest.json'} is unreadable " \
           f"({detail})" in doctor.stdout
    assert contents(index) == before
    # The advised command repairs it.
    assert run("ingest", str(docs), "--rebuild").exit_code == 0
    assert run("search", "backups").exit_code == 0


def test_an_index_made_by_a_newer_ragkit_is_refused_with_upgrade_advice(run, index, docs):
    edit_manifest(index, format_version=999)
    for args in [*READERS, ["ingest", str(docs)], ["ingest", str(docs), "--rebuild"]]:
        result = run(*args)
        assert result.exit_code == 4, args
        assert error_line(result) == (f"error: index {index} was made by a newer ragkit "
                                      "(format 999; this ragkit reads format 1) — upgrade "
                                      "ragkit to use it")
    listed = run("indexes", "list").stdout
    assert listed.startswith("default\tmade by a newer ragkit — upgrade ragkit to use it\t")
    assert json.loads((index / "manifest.json").read_text())["format_version"] == 999


def test_a_dimension_that_does_not_match_the_vectors_is_exit_4_not_a_crash(run, index):
    edit_manifest(index, dimension=128)  # the test server's vectors have 384
    result = run("search", "backups")
    assert result.exit_code == 4
    assert error_line(result) == (
        "error: 'all-minilm' now returns 384-dim vectors but index 'default' holds 128-dim "
        "ones — re-index with --rebuild")
    doctor = run("doctor")  # searches the stored vectors themselves: no AssertionError
    assert "Traceback" not in doctor.output and "internal error" not in doctor.output
    assert (f"[ERR] index default: index file {index / 'chunks.sqlite'} is unreadable (chunk 1 "
            "has a damaged vector (1536 bytes, not 512 bytes for 128 dimensions))"
            in doctor.stdout)


@pytest.mark.parametrize(("damage", "detail"), [
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: p.unlink(), "file is missing"),
    (lambda p: sql(p.parent, "DROP TABLE chunk_terms"), "no chunk_terms table"),
    (lambda p: sql(p.parent, "UPDATE meta SET value = 'abc' WHERE key = 'generation'"),
     "generation 'abc' is not a whole number"),
    (lambda p: sql(p.parent, "DELETE FROM meta"), "no generation counter"),
], ids=["empty", "missing", "no-table", "generation-not-a-number", "no-generation"])
def test_a_database_that_is_not_an_index_is_exit_4_and_never_rewritten(run, index, docs,
                                                                       damage, detail):
    damage(index / "chunks.sqlite")
    before = contents(index)
    for args in [*READERS, ["ingest", str(docs)]]:
        result = run(*args)
        assert result.exit_code == 4, (args, result.output)
        assert error_line(result) == (
            f"error: index file {index / 'chunks.sqlite'} is unreadable ({detail}) {HINT}")
    assert "[ERR] index default: index file" in run("doctor").stdout
    assert contents(index) == before  # no schema written into it, nothing created
    assert run("ingest", str(docs), "--rebuild").exit_code == 0
    assert "backups.md" in run("search", "backups").stdout


@pytest.mark.parametrize(("blob", "detail"), [
    (b"\x00", "chunk 1 has a damaged vector (1 bytes, not 1536 bytes for 384 dimensions)"),
    ("text", "chunk 1 has a damaged vector (str, not 1536 bytes for 384 dimensions)"),
    (np.full(384, np.nan, dtype=np.float32).tobytes(), "chunk 1 has a vector that is not finite"),
], ids=["short", "text", "nan"])
def test_a_damaged_vector_in_sqlite_is_exit_4(run, index, blob, detail):
    sql(index, "UPDATE chunks SET vector = ? WHERE id = 1", blob)
    for cache in index.glob("vectors-*.faiss"):
        cache.unlink()  # the vectors are read from SQLite
    result = run("search", "backups")
    assert result.exit_code == 4
    assert error_line(result) == (
        f"error: index file {index / 'chunks.sqlite'} is unreadable ({detail}) {HINT}")


@pytest.mark.parametrize("kind", ["other-dimension", "no-ids", "l2"])
def test_a_faiss_cache_ragkit_cannot_use_is_rebuilt_from_sqlite(run, index, caplog, kind):
    import faiss

    (cache,) = index.glob("vectors-*.faiss")
    store = Store.open(index)
    count = store.count()
    store.close()
    ids = np.arange(1, count + 1, dtype=np.int64)
    if kind == "other-dimension":
        wrong = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
        wrong.add_with_ids(np.ones((count, 8), dtype=np.float32), ids)
        problem = "holds 8-dimensional vectors, not 384"
    elif kind == "no-ids":
        wrong = faiss.IndexFlatIP(384)
        wrong.add(np.ones((count, 384), dtype=np.float32))
        problem = "is not a cache ragkit wrote (IndexFlatIP)"
    else:
        wrong = faiss.IndexIDMap2(faiss.IndexFlatL2(384))
        wrong.add_with_ids(np.ones((count, 384), dtype=np.float32), ids)
        problem = "is not a cache ragkit wrote (IndexIDMap2)"
    faiss.write_index(wrong, str(cache))
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        result = run("search", "backups at night", "-k", "1")
    assert result.exit_code == 0, result.output
    assert "backups.md" in result.stdout
    assert f"{cache} {problem}; rebuilding it from chunks.sqlite" in caplog.text


def test_commands_that_only_read_change_no_index_file(run, index):
    before = contents(index)
    for args in [*READERS, ["indexes", "list"], ["doctor"], ["search", "x", "--json"]]:
        assert run(*args).exit_code in (0, 6), args
    assert contents(index) == before
