"""What only the Milvus store does: its errors, its shared state, and its crash recovery.

Runs on Milvus Lite (a ``.db`` file, in this process); a server is reached
through the same code with a ``milvus://`` URI.  The behaviour both stores
share is tested on both in tests/test_stores.py.
"""

from __future__ import annotations

import importlib.util
import os
import socket

import numpy as np
import pytest

from ragkit import Index
from ragkit.chunking import Chunk
from ragkit.store.milvus import MilvusStore
from ragkit.store.milvus_names import enc_path
from ragkit.store.tables import FileRecord


@pytest.fixture
def lite(tmp_path):
    return str(tmp_path / "team.db")


def test_an_unreachable_server_is_one_line_and_exit_3(run, docs):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("ingest", str(docs), "--store", f"milvus://127.0.0.1:{port}")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot use Milvus at milvus://127.0.0.1:{port} (")
    assert lines[-1].endswith("check that it runs, the URI, and RAGKIT_MILVUS_TOKEN")
    assert not (docs.parent / "indexes" / "default").exists()  # nothing half made


def test_a_bad_store_uri_is_a_usage_error(run, docs):
    result = run("ingest", str(docs), "--store", "postgres://x")
    assert result.exit_code == 2
    assert "unknown --store 'postgres://x'" in result.stderr


def test_missing_packages_say_how_to_install(run, docs, lite, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "milvus_lite" else real(name, *a))
    result = run("ingest", str(docs), "--store", lite)
    assert result.exit_code == 2
    assert "install with `pip install ragkit[milvus]`" in result.stderr


def test_the_index_lives_in_milvus_another_home_joins_it(run, docs, lite, tmp_path,
                                                         monkeypatch, ollama):
    assert run("ingest", str(docs), "--index", "team", "--store", lite).exit_code == 0
    # Another machine: its own index home, the same URI and index name.
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "elsewhere"))
    result = run("ingest", str(docs), "--index", "team", "--store", lite)
    assert result.exit_code == 0, result.output
    assert "0 added, 0 updated, 0 removed, 4 unchanged" in result.stdout
    assert "backups.md" in run("search", "When do backups run?", "--index", "team").stdout
    # With another embedding model the collection is refused: the mismatch error, exit 4.
    ollama.models.add("nomic-embed-text:latest")
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "third"))
    result = run("ingest", str(docs), "--index", "team", "--store", lite,
                 "--embed-model", "nomic-embed-text")
    assert result.exit_code == 4
    assert "was built with 'all-minilm'" in result.stderr


def test_an_existing_index_keeps_its_store(run, docs, lite):
    assert run("ingest", str(docs), "--index", "n").exit_code == 0
    result = run("ingest", str(docs), "--index", "n", "--store", lite)
    assert result.exit_code == 2
    assert "lives in local" in result.stderr


def test_delete_drops_the_collections(run, docs, lite):
    assert run("ingest", str(docs), "--index", "gone", "--store", lite).exit_code == 0
    assert run("indexes", "delete", "gone", "--yes").exit_code == 0
    assert run("ingest", str(docs), "--index", "gone", "--store", lite).stdout.count(
        "4 added") == 1  # a fresh collection, not the old records


def _rows(texts: list[str]) -> list[Chunk]:
    return [Chunk(t, i, i + 1) for i, t in enumerate(texts)]


def _vectors(n: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(n).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def milvus_store(env, docs, lite):
    with Index.open("m", create=True, store=lite) as index:
        index.ingest([docs])
    index = Index.open("m")
    yield index._store
    index.close()


def test_a_file_being_written_is_invisible_until_its_flip(milvus_store):
    store = milvus_store
    path = next(p for p in store.files() if p.endswith("garden.txt"))
    dim = store.dimension
    with store.transaction() as tx:
        tx.remove_file(path)
        tx.add_chunks(path, _rows(["zucchini grow fast"]), _vectors(1, dim))
        tx._write_rows()  # the new version is in Milvus now, not flipped yet
        seen = [store.chunks([i])[i].text for i, _ in store.keyword_search("zucchini tomatoes", 5)]
        assert not any("zucchini" in t for t in seen)
        assert any("Tomatoes" in t for t in seen)
        tx.touch_file(FileRecord(path, "x", 1, 1, 1))
    seen = [store.chunks([i])[i].text for i, _ in store.keyword_search("zucchini tomatoes", 5)]
    assert seen == ["zucchini grow fast"]  # the new version whole, the old one gone


def test_a_dead_writers_leftovers_are_cleaned_by_the_next_writer(milvus_store):
    store = milvus_store
    conn = store._conn
    path = next(p for p in store.files() if p.endswith("garden.txt"))
    before = store.count()
    # A writer of this host, now dead, wrote a marker and a new version, and never flipped.
    dead = f"{socket.gethostname()}:{_dead_pid()}"
    conn.put_markers([(path, 7, dead)])
    conn.insert_chunks([{"path": enc_path(path), "version": 7, "page": -1, "start": 0, "end": 1,
                         "heading": "", "text": "orphan zucchini", "terms": "orphan zucchini",
                         "vector": _vectors(1, store.dimension)[0].tolist()}])
    assert store.keyword_search("orphan zucchini", 5) == []  # never visible
    # A live writer's marker (another host, or a live pid) is left alone.
    conn.put_markers([("/elsewhere/x.md", 9, "other-host:1")])
    store.lock()
    try:
        assert len(conn.query_chunks("id >= 0", ["id"])) == before
        assert [m["path"] for m in conn.markers()] == ["/elsewhere/x.md"]
    finally:
        store.unlock()
    assert store.count() == before


def test_keyword_search_meets_other_forms_of_a_word(milvus_store):
    store = milvus_store  # Milvus Lite ignores stemmer filters: ragkit stems, as FTS5 does
    assert store.manifest["keyword_terms"] == "porter"
    path = next(p for p in store.files() if p.endswith("garden.txt"))
    with store.transaction() as tx:
        tx.remove_file(path)
        tx.add_chunks(path, _rows(["The study of bees", "She runs every morning"]),
                      _vectors(2, store.dimension))
        tx.touch_file(FileRecord(path, "x", 1, 1, 2))
    for query, text in (("studies", "The study of bees"), ("running", "She runs every morning")):
        found = store.keyword_search(query, 3)
        assert text in [store.chunks([i])[i].text for i, _ in found]


def test_an_old_collection_without_the_marker_keeps_unstemmed_terms(milvus_store):
    milvus_store.update_manifest(keyword_terms=None)  # as built before ragkit stemmed
    old = MilvusStore.open(milvus_store.root, milvus_store.manifest)
    try:
        path = next(p for p in old.files() if p.endswith("garden.txt"))
        with old.transaction() as tx:
            tx.remove_file(path)
            tx.add_chunks(path, _rows(["Ponies graze on studies"]), _vectors(1, old.dimension))
            tx.touch_file(FileRecord(path, "x", 1, 1, 1))
        rows = old._conn.query_chunks(f'path == "{enc_path(path)}"', ["terms"])
        assert [r["terms"] for r in rows] == ["ponies graze on studies"]  # as before
        found = old.keyword_search("studies ponies", 3)
        assert [old.chunks([i])[i].text for i, _ in found] == ["Ponies graze on studies"]
        assert old.keyword_search("study", 3) == []  # its terms are not stemmed
    finally:
        old.close()


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_a_milvus_lite_file_held_by_another_process_is_busy_exit_4(run, docs, lite):
    import fcntl

    assert run("ingest", str(docs), "--index", "held", "--store", lite).exit_code == 0
    with open(os.path.join(lite, "LOCK"), "a+") as other:  # as another process holds it
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run("search", "backups", "--index", "held")
    assert result.exit_code == 4
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: index {lite} is being written by another ragkit process — wait for it to finish")
    assert run("search", "backups", "--index", "held").exit_code == 0
