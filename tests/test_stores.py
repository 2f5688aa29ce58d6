"""The store-agnostic behaviour, on both stores: local (SQLite + FAISS) and Milvus Lite.

Ingest, incremental add/change/delete, search modes with path filters and
diversity, ask, and kill -9 at random points during an ingest, each through
the ``store`` fixture (tests/conftest.py).  Milvus-only behaviour (its errors,
recovery from a dead writer's leftovers) is in tests/test_milvus.py.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_crash import ROOT, child_env, held, hold_batch, kill, write_corpus, write_doc

from ragkit import Index


def ingest(run, store, *args: str):
    result = run("ingest", *args, *store.args)
    assert result.exit_code == 0, result.output
    return result


def hits(run, query: str, *args: str) -> list[dict]:
    result = run("search", query, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["hits"]


def test_ingest_then_every_search_mode_finds_the_passage(run, docs, store):
    out = ingest(run, store, str(docs)).stdout
    assert "4 added, 0 updated, 0 removed" in out
    for mode in ("hybrid", "keyword", "vector"):
        found = hits(run, "When do backups run?", "-k", "2", "--retrieval", mode)
        assert found[0]["source"].endswith("backups.md"), (mode, found)
        assert all(-1 <= h["cosine"] <= 1 for h in found)
        ranking = [h["cosine" if mode == "vector" else "score"] for h in found]
        assert ranking == sorted(ranking, reverse=True)
    for mode in ("hybrid", "keyword"):  # CJK keywords: ragkit's bigrams on both stores
        assert hits(run, "熊猫吃竹子", "-k", "1", "--retrieval", mode)[0]["source"].endswith(
            "panda.md")
    # Later commands need only --index: the store is in the manifest.
    manifest = json.loads((Path(os.environ["RAGKIT_HOME"]) / "default" / "manifest.json")
                          .read_text())
    assert manifest.get("store") == store.uri


def test_path_filters_and_diversity_work_the_same(run, docs, store):
    ingest(run, store, str(docs))
    found = hits(run, "pump backups tomatoes", "-k", "5", "--path", "*.pdf", "--diversity", "0.3")
    assert found and all(h["source"].endswith("manual.pdf") for h in found)
    found = hits(run, "backups tomatoes pump", "-k", "3", "--path", f"{docs / 'ops'}/",
                 "--retrieval", "keyword")
    assert found and all(h["source"].endswith("ops/backups.md") for h in found)
    result = run("search", "pump", "--path", "*.docx")
    assert result.exit_code == 2


def test_incremental_add_change_and_delete(run, docs, store):
    ingest(run, store, str(docs))
    (docs / "new.md").write_text("# Coffee\n\nThe grinder is cleaned every Friday.\n")
    (docs / "garden.txt").write_text("Peppers like warm soil and little water.\n")
    (docs / "panda.md").unlink()
    out = ingest(run, store, str(docs)).stdout
    assert "1 added, 1 updated, 1 removed, 2 unchanged" in out
    with Index.open("default") as index:
        names = sorted(Path(p).name for p in index.files())
        assert names == ["backups.md", "garden.txt", "manual.pdf", "new.md"]
        texts = [h.text for h in index.search("peppers tomatoes grinder", k=10, mode="keyword")]
    assert any("Peppers" in t for t in texts) and any("grinder" in t for t in texts)
    assert not any("Tomatoes" in t for t in texts)  # the old version of garden.txt is gone
    assert "0 added, 0 updated, 0 removed, 4 unchanged" in ingest(run, store, str(docs)).stdout


def test_ask_answers_from_the_store_and_cites(run, docs, store):
    ingest(run, store, str(docs))
    result = run("ask", "When do backups run?")
    assert result.exit_code == 0, result.output
    answer, sources = result.stdout.split("\n\nSources:\n")
    assert "02:00" in answer and "backups.md" in sources


def files_exactly_once(root_name: str, server, home: Path) -> list[tuple[str, str]]:
    """Assert each file's chunks are there once, as many as its record says; the pairs."""
    with Index.open(root_name, home=home, backend="ollama", host=server.url) as index:
        store = index._store
        assert store is not None
        records = store.files()
        chunks = store.chunks(store.chunk_ids(sorted(records)))
        per_file = Counter(c.path for c in chunks.values())
        assert per_file == {p: r.chunks for p, r in records.items() if r.chunks}
        pairs = sorted((c.path, c.text) for c in chunks.values())
        assert len(pairs) == len(set(pairs)), "duplicate chunks"
        assert len(index) == len(pairs)
        found = index.search("backup restore schedule", k=5)
        assert len(found) == min(5, len(pairs))  # (a Milvus index killed before its first
        assert all(h.path in records for h in found)  # commit exists, empty)
        return pairs


def test_kill_9_at_random_points_then_a_rerun_has_every_file_once(tmp_path, ollama, store):
    seed = int(os.environ.get("RAGKIT_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    corpus = write_corpus(tmp_path / "corpus", 60)
    home = tmp_path / "home"
    ollama.delay = 0.01
    kills = 0
    for round_ in range(4):
        if round_ >= 2:  # updates and removals get killed too
            for n in rng.sample(range(60), 6):
                path = corpus / f"doc{n:03d}.txt"
                if path.exists():
                    write_doc(path, f"doc{n}-r{round_}", rng)
            (corpus / f"doc{rng.randrange(60):03d}.txt").unlink(missing_ok=True)
        # Where it stops: a document batch, held until the kill (later rounds redo few files).
        hold = hold_batch(ollama, rng.randint(1, 10 if round_ < 2 else 2))
        proc = subprocess.Popen(
            [sys.executable, "-m", "ragkit", "ingest", str(corpus), "--index", "crash",
             "--batch-size", "8", *store.args],
            env=child_env(ollama, home), cwd=str(ROOT),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        held(hold, proc)
        # Other threads of the ingest go on meanwhile (reading, committing earlier batches).
        time.sleep(rng.uniform(0, 0.03))
        kills += kill(proc)
        hold.release()
        if (home / "crash" / "manifest.json").exists():
            files_exactly_once("crash", ollama, home)
    assert kills >= 2, f"seed {seed}: only {kills} kills landed mid-ingest"
    ollama.delay = 0
    final = subprocess.run(
        [sys.executable, "-m", "ragkit", "ingest", str(corpus), "--index", "crash",
         *store.args], env=child_env(ollama, home), cwd=str(ROOT), capture_output=True,
        text=True, timeout=180)
    assert final.returncode == 0, final.stderr
    pairs = files_exactly_once("crash", ollama, home)
    with Index.open("clean", home=home, create=True, backend="ollama", host=ollama.url) as idx:
        idx.ingest([corpus], batch_size=8)
    assert pairs == files_exactly_once("clean", ollama, home), f"seed {seed}"
    if store.uri:  # and the old versions are gone from Milvus, not only hidden
        with Index.open("crash", home=home, backend="ollama", host=ollama.url) as index:
            raw = index._store._conn.query_chunks("id >= 0", ["id"])  # type: ignore[union-attr]
            assert len(raw) == len(pairs)
            assert not index._store._conn.markers()  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
def test_library_search_modes_agree_on_the_best_file(env, docs, store, mode):
    with Index.open("lib", create=True, store=store.uri) as index:
        index.ingest([docs])
        found = index.search("espresso machine descaled citric acid", k=3, mode=mode)
        assert found[0].source.endswith("manual.pdf") and found[0].page == 1
        neighbours = index.neighbours(found[0].id, 1)
        assert found[0].id in [h.id for h in neighbours]
