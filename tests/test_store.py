"""Storage: SQLite is the truth, the FAISS file a cache that can always be rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.backends.base import normalize_rows
from ragkit.chunking import Chunk
from ragkit.errors import IndexBusyError, IndexCorruptError
from ragkit.store.local import Store
from ragkit.store.tables import FileRecord

DIM = 8


def _vectors(n: int, seed: int) -> np.ndarray:
    return normalize_rows(np.random.default_rng(seed).normal(size=(n, DIM)))


def _put(store: Store, path: str, n: int, seed: int) -> np.ndarray:
    vecs = _vectors(n, seed)
    rows = [Chunk(f"{path} chunk {i}", i * 10, i * 10 + 5) for i in range(n)]
    with store.transaction() as tx:
        tx.put_file(FileRecord(path, f"sha-{seed}", 1, 2, n), rows, vecs)
    return vecs


@pytest.fixture
def store(tmp_path):
    s = Store.create(tmp_path / "idx", {"embed_model": "m", "dimension": DIM})
    yield s
    s.close()


def test_search_returns_the_stored_chunk_for_its_own_vector(store):
    vecs = _put(store, "/a.md", 5, seed=1)
    (cid, score), *_ = store.search(vecs[3], 2)
    assert store.chunks([cid])[cid].text == "/a.md chunk 3"
    assert score == pytest.approx(1.0, abs=1e-5)


def test_replacing_a_file_leaves_no_stale_vectors(store):
    _put(store, "/a.md", 5, seed=1)
    new = _put(store, "/a.md", 2, seed=2)
    assert store.count() == 2
    assert len(store.search(new[0], 10)) == 2
    assert store.files()["/a.md"].sha256 == "sha-2"


def test_a_failed_transaction_changes_nothing(store):
    _put(store, "/a.md", 3, seed=1)
    before = store.generation()
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.remove_file("/a.md")
        raise RuntimeError("crash mid-write")
    assert store.count() == 3
    assert store.generation() == before
    assert len(store.search(_vectors(1, 9)[0], 10)) == 3


def test_missing_or_damaged_faiss_file_is_rebuilt_from_sqlite(store, tmp_path, caplog):
    vecs = _put(store, "/a.md", 4, seed=1)
    store.save_vectors()
    faiss_file = next((tmp_path / "idx").glob("vectors-*.faiss"))
    faiss_file.write_bytes(b"garbage")
    reopened = Store.open(tmp_path / "idx")
    cid, _score = reopened.search(vecs[2], 1)[0]
    assert reopened.chunks([cid])[cid].text == "/a.md chunk 2"
    assert "unreadable" in caplog.text
    reopened.close()


def test_a_reader_sees_each_committed_generation(store, tmp_path):
    reader = Store.open(tmp_path / "idx")
    assert reader.search(_vectors(1, 0)[0], 5) == []
    vecs = _put(store, "/b.md", 3, seed=4)  # no save_vectors(): the reader rebuilds
    assert len(reader.search(vecs[0], 5)) == 3
    reader.close()


def test_reads_see_nothing_of_a_transaction_until_it_commits(store):
    old = _put(store, "/a.md", 2, seed=1)
    new = _vectors(3, seed=2)
    rows = [Chunk(f"fresh chunk {i}", i, i + 1) for i in range(3)]
    with store.transaction() as tx:
        tx.put_file(FileRecord("/b.md", "sha-b", 1, 2, 3), rows, new)
        # The same Store, as a search thread of the ingesting process would use it.
        assert store.count() == 2 and set(store.files()) == {"/a.md"}
        assert store.keyword_search("fresh", 10) == []
        assert len(store.search(new[0], 10)) == 2
        assert store.cosines(new[0], range(1, 6)).keys() == {1, 2}
        with store.reading():  # one snapshot: the vectors agree with the rows
            before = store.generation()
            assert store.search(old[1], 1)[0][1] == pytest.approx(1.0, abs=1e-5)
    assert store.generation() == before + 1
    assert store.count() == 5 and len(store.keyword_search("fresh", 10)) == 3
    (cid, score), *_ = store.search(new[2], 1)
    assert store.chunks([cid])[cid].text == "fresh chunk 2"
    assert score == pytest.approx(1.0, abs=1e-5)


def test_a_read_snapshot_keeps_its_state_while_others_commit(store, tmp_path):
    _put(store, "/a.md", 2, seed=1)
    reader = Store.open(tmp_path / "idx")  # another process, say
    with reader.reading():
        assert reader.count() == 2
        new = _put(store, "/b.md", 3, seed=2)
        assert reader.count() == 2 and len(reader.search(new[0], 10)) == 2
        assert set(reader.files()) == {"/a.md"}
    assert reader.count() == 5 and len(reader.search(new[0], 10)) == 5
    reader.close()


def test_second_writer_is_refused_with_a_clear_message(store, tmp_path):
    store.lock()
    other = Store.open(tmp_path / "idx")
    with pytest.raises(IndexBusyError, match="being written by another ragkit process"):
        other.lock()
    store.unlock()
    other.lock()  # free again once the first writer is done
    other.close()


def test_corrupt_manifest_names_the_file_and_the_fix(store, tmp_path, monkeypatch):
    (tmp_path / "idx" / "manifest.json").write_text("{not json")
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(IndexCorruptError) as info:
        Store.open(tmp_path / "idx")
    message = str(info.value)
    assert "manifest.json is unreadable" in message
    # Not in RAGKIT_HOME: the fix names the index by its path, or it would reach another.
    assert f"--index {tmp_path / 'idx'} --rebuild" in message
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path))
    with pytest.raises(IndexCorruptError, match="`ragkit ingest PATH --index idx --rebuild`"):
        Store.open(tmp_path / "idx")


def test_corrupt_database_names_the_file(tmp_path):
    root = tmp_path / "idx"
    Store.create(root, {"embed_model": "m", "dimension": DIM}).close()
    (root / "chunks.sqlite").write_bytes(b"this is not a database" * 100)
    for extra in ("chunks.sqlite-wal", "chunks.sqlite-shm"):
        (root / extra).unlink(missing_ok=True)
    with pytest.raises(IndexCorruptError, match=r"chunks\.sqlite is unreadable"):
        Store.open(root)


def test_keyword_search_ranks_by_bm25_and_follows_deletes(store):
    rows = [
        Chunk("The espresso machine needs descaling every month.", 0, 1),
        Chunk("Tomatoes need sun.", 1, 2),
        Chunk("熊猫主要生活在四川，每天吃竹子。", 2, 3, "Panda"),
    ]
    with store.transaction() as tx:
        tx.put_file(FileRecord("/k.md", "h", 1, 1, 3), rows, _vectors(3, 5))
    texts = lambda hits: [store.chunks([i])[i].text for i, _ in hits]  # noqa: E731
    assert texts(store.keyword_search("descaled espresso", 5))[0].startswith("The espresso")
    assert texts(store.keyword_search("熊猫吃什么", 5)) == ["熊猫主要生活在四川，每天吃竹子。"]
    # "panda" is only in the heading
    assert texts(store.keyword_search("panda", 5)) == ["熊猫主要生活在四川，每天吃竹子。"]
    assert store.keyword_search("?!", 5) == []
    with store.transaction() as tx:
        tx.remove_file("/k.md")
    assert store.keyword_search("espresso", 5) == []


@pytest.fixture
def small_threshold(monkeypatch):
    """Make the approximate (IVF) index kick in at 300 chunks instead of tens of thousands."""
    import ragkit.store.local as store_module

    monkeypatch.setattr(store_module, "APPROX_THRESHOLD", 300)
    monkeypatch.setattr(store_module, "EXACT_BELOW", 150)
    monkeypatch.setattr(store_module, "EXACT_SUBSET_MAX", 20)


def _fill(store: Store, files: int, per_file: int) -> dict[str, np.ndarray]:
    return {f"/f{n}.md": _put(store, f"/f{n}.md", per_file, seed=100 + n) for n in range(files)}


def test_past_the_threshold_the_cache_becomes_approximate(store, tmp_path, small_threshold):
    vecs = _fill(store, 8, 50)
    assert not store.approximate  # grown by transactions: still exact until saved
    store.save_vectors()
    assert store.approximate
    reopened = Store.open(tmp_path / "idx")
    assert reopened.approximate  # the IVF file is what was saved and loaded
    cid, score = reopened.search(vecs["/f3.md"][7], 1)[0]
    assert reopened.chunks([cid])[cid].text == "/f3.md chunk 7"
    assert score == pytest.approx(1.0, abs=1e-5)
    assert reopened.vectors([cid])[cid] == pytest.approx(vecs["/f3.md"][7], abs=1e-6)
    reopened.close()


def test_approximate_index_follows_removals_and_filters(store, small_threshold):
    vecs = _fill(store, 8, 50)
    store.save_vectors()
    with store.transaction() as tx:
        tx.remove_file("/f2.md")
    found = store.search(vecs["/f2.md"][0], 20)
    assert found and all(store.chunks([c])[c].path != "/f2.md" for c, _ in found)
    small = store.chunk_ids(["/f5.md"])[:10]  # exact over the subset
    hits = store.search(vecs["/f5.md"][4], 3, ids=small)
    assert store.chunks([hits[0][0]])[hits[0][0]].text == "/f5.md chunk 4"
    assert {c for c, _ in hits} <= set(small)
    large = store.chunk_ids(["/f5.md", "/f6.md"])  # more than EXACT_SUBSET_MAX: the selector
    hits = store.search(vecs["/f6.md"][9], 5, ids=large)
    assert len(hits) == 5 and {c for c, _ in hits} <= set(large)
    assert store.chunks([hits[0][0]])[hits[0][0]].text == "/f6.md chunk 9"
    assert store.search(vecs["/f6.md"][9], 5, ids=store.chunk_ids(["/f2.md"])) == []


def test_an_index_that_shrinks_goes_back_to_exact_search(store, small_threshold):
    _fill(store, 8, 50)
    store.save_vectors()
    with store.transaction() as tx:
        for n in range(6):
            tx.remove_file(f"/f{n}.md")
    store.save_vectors()
    assert not store.approximate and store.count() == 100
    assert len(store.search(_vectors(1, 3)[0], 200)) == 100


def test_large_indexes_score_only_the_rarest_keywords(store, small_threshold, monkeypatch):
    import ragkit.store.fulltext as fulltext

    monkeypatch.setattr(fulltext, "KEYWORD_BUDGET", 50)
    rows = [Chunk(f"the report number {i}" + (" zebra" if i < 3 else ""), i, i + 1)
            for i in range(400)]
    with store.transaction() as tx:
        tx.put_file(FileRecord("/many.md", "h", 1, 1, 400), rows, _vectors(400, 7))
    hits = store.keyword_search("the zebra report", 10)
    assert len(hits) == 3  # "the" and "report" (in every chunk) are left out of the match
    assert all("zebra" in store.chunks([c])[c].text for c, _ in hits)
    monkeypatch.setattr(fulltext, "KEYWORD_BUDGET", 40)
    assert store.keyword_search("the report", 5) == []  # only very common terms: none scored
