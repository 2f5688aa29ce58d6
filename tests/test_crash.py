"""Crashes and concurrency: ``kill -9`` an ingest anywhere, run two at once, search meanwhile.

The ingests run as real ``python -m ragkit ingest`` subprocesses against the
Ollama-protocol test server in this process.  A kill is gated on an event: the
server holds the Nth embedding request of the ingest (:meth:`FakeOllama.hold`),
so the ingest is known to be running, blocked at that point, when it is
killed.  After every kill the index must open, search, and hold exactly one
vector per chunk; a re-run must end in the state a clean build gives.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ragkit import Index
from ragkit.cli.main import cli
from ragkit.errors import IndexBusyError
from ragkit.store.building import WORK_DIR
from ragkit.store.local import Store

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["backup", "restore", "server", "index", "chunk", "vector", "answer", "model", "folder",
         "network", "disk", "schedule", "latency", "garden", "tomato", "basil", "pump",
         "warranty", "espresso", "citric", "acid"]
PROBE = ["dimension probe"]


def write_corpus(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` small text files, each with unique sentences (about two chunks each)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_doc(folder / f"doc{i:03d}.txt", f"doc{i}", rng)
    return folder


def write_doc(path: Path, tag: str, rng: random.Random) -> None:
    sentences = [f"{tag} sentence {n} is about " + " ".join(rng.choices(WORDS, k=12)) + "."
                 for n in range(22)]
    path.write_text("\n\n".join(" ".join(sentences[i:i + 3]) for i in range(0, 22, 3)) + "\n")


def child_env(server, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGKIT_", "OLLAMA_"))}
    env.update(OLLAMA_HOST=server.url, RAGKIT_HOME=str(home), RAGKIT_BACKEND="ollama",
               PYTHONPATH=str(ROOT))
    return env


def start_ingest(server, home: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ragkit", "ingest", *args, "--batch-size", "8"],
        env=child_env(server, home), cwd=str(ROOT),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def is_batch(body) -> bool:
    """An embedding request for documents, not the dimension probe."""
    return isinstance(body, dict) and body.get("input") != PROBE


def hold_batch(server, n: int):
    """Hold the ``n``-th document batch the server receives from now on."""
    return server.hold("/api/embed", n, where=is_batch)


def held(hold, proc: subprocess.Popen[bytes]) -> bool:
    """Wait until ``proc`` sends the held request; False if it ended first."""
    return hold.wait(60, unless=lambda: proc.poll() is not None)


def committed_files(root: Path) -> int:
    """Files committed to the index at ``root`` so far (0 before it exists)."""
    if not Store.exists(root):
        return 0
    db = sqlite3.connect(root / "chunks.sqlite", timeout=30)
    try:
        return int(db.execute("SELECT COUNT(*) FROM files").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not written yet
        return 0
    finally:
        db.close()


def wait_for_commits(proc: subprocess.Popen[bytes], root: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while proc.poll() is None and committed_files(root) < count:
        assert time.monotonic() < deadline, "the ingest committed nothing"
        time.sleep(0.002)


def kill(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL the process if it still runs; whether it did."""
    alive = proc.poll() is None
    if alive:
        proc.kill()
    proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()
    return alive


def check_consistent(root: Path) -> list[tuple[str, str]]:
    """Assert the index at ``root`` is whole; return its sorted (path, chunk text) pairs."""
    import faiss

    store = Store.open(root)
    try:
        rows = store._db.execute("SELECT id, path, text, vector FROM chunks").fetchall()
        ids = {r[0] for r in rows}
        # Every chunk has its keyword row and vice versa.
        assert {r[0] for r in store._db.execute("SELECT rowid FROM chunk_terms")} == ids
        # Files are committed whole: the chunk count recorded per file is what is stored.
        per_file = Counter(r[1] for r in rows)
        assert per_file == {p: f.chunks for p, f in store.files().items()}
        # The persisted FAISS cache, if there is one for this generation, matches SQLite.
        cache = root / f"vectors-{store.generation()}.faiss"
        indexes = [store._vectors()] + ([faiss.read_index(str(cache))] if cache.exists() else [])
        for index in indexes:
            assert set(faiss.vector_to_array(index.id_map).tolist()) == ids
            for cid, _, _, blob in rows:
                assert np.allclose(index.reconstruct(cid), np.frombuffer(blob, np.float32))
        pairs = sorted((r[1], r[2]) for r in rows)
        assert len(pairs) == len(set(pairs)), "duplicate chunks"
        return pairs
    finally:
        store.close()


def check_searchable(root: Path, server) -> None:
    with Index.open(root, backend="ollama", host=server.url) as index:
        hits = index.search("backup restore schedule", k=5)
        files = index._store.files() if index._store else {}
        assert len(hits) == min(5, len(index))
        assert all(hit.source in files for hit in hits)


def clean_build(home: Path, server, *paths: Path, name: str = "clean") -> list[tuple[str, str]]:
    with Index.open(name, home=home, create=True, backend="ollama", host=server.url) as index:
        index.ingest(list(paths), batch_size=8)
    return check_consistent(home / name)


def listed_indexes(home: Path) -> list[str]:
    result = CliRunner().invoke(cli, ["indexes", "list"], env={"RAGKIT_HOME": str(home)},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [line.split("\t")[0] for line in result.stdout.splitlines()]


def test_kill_9_at_random_points_never_loses_or_duplicates(tmp_path, ollama):
    seed = int(os.environ.get("RAGKIT_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    corpus = write_corpus(tmp_path / "corpus", 200)
    home = tmp_path / "home"
    root = home / "crash"
    kills = 0
    for round_ in range(6):
        if round_ >= 2:  # the corpus changes between runs: updates and removals get killed too
            for n in rng.sample(range(200), 12):
                path = corpus / f"doc{n:03d}.txt"
                if path.exists():
                    write_doc(path, f"doc{n}-r{round_}", rng)
            (corpus / f"doc{rng.randrange(200):03d}.txt").unlink(missing_ok=True)
            write_doc(corpus / f"new{round_}.txt", f"new{round_}", rng)
        # Where it stops: a document batch (about 4 files each), held until the kill.
        # Later rounds re-index a dozen files, some 4 batches: they stop within those.
        n = rng.randint(20, 40) if round_ == 0 else rng.randint(0, 12 if round_ == 1 else 3)
        hold = hold_batch(ollama, n) if n else None
        proc = start_ingest(ollama, home, str(corpus), "--index", "crash")
        if round_ == 0:  # the first build: kill it once it has committed some files
            wanted = rng.randint(3, 40)
            wait_for_commits(proc, root, wanted)
        if hold is not None:
            held(hold, proc)
        # Other threads of the ingest go on meanwhile (reading, committing earlier batches).
        time.sleep(rng.uniform(0, 0.03))
        was_running = kill(proc)
        if hold is not None:
            hold.release()
        kills += was_running
        if round_ == 0:
            assert was_running, f"seed {seed}: the first build finished before the kill"
            # What a killed first build committed is kept, for the next run to resume from.
            assert committed_files(root) >= wanted, f"seed {seed}"
        if Store.exists(root):
            check_consistent(root)
            check_searchable(root, ollama)
        assert listed_indexes(home) in ([], ["crash"])
    assert kills >= 3, f"seed {seed}: only {kills} kills landed mid-ingest"

    final = subprocess.run(
        [sys.executable, "-m", "ragkit", "ingest", str(corpus), "--index", "crash"],
        env=child_env(ollama, home), cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert check_consistent(root) == clean_build(home, ollama, corpus), f"seed {seed}"
    assert sorted(p.name for p in home.iterdir()) == ["clean", "crash"]  # no work folders left
    assert not list(root.glob(".*.tmp"))


def test_a_killed_rebuild_keeps_the_old_index_and_is_cleaned_up(tmp_path, ollama):
    corpus = write_corpus(tmp_path / "corpus", 40)
    home = tmp_path / "home"
    before = clean_build(home, ollama, corpus, name="idx")
    hold = hold_batch(ollama, 3)
    proc = start_ingest(ollama, home, str(corpus), "--index", "idx", "--rebuild")
    assert held(hold, proc), "the rebuild ended before its third batch"
    assert kill(proc)
    hold.release()
    # The old index is untouched and still answers; the half-built one is out of sight.
    assert check_consistent(home / "idx") == before
    check_searchable(home / "idx", ollama)
    assert [p.name for p in (home / WORK_DIR).iterdir()] == [f"idx.building-{proc.pid}"]
    assert listed_indexes(home) == ["idx"]
    # The next ingest removes the dead work folder; a completed rebuild swaps in atomically.
    with Index.open("idx", home=home, backend="ollama", host=ollama.url) as index:
        index.ingest([corpus], rebuild=True, batch_size=8)
    assert not (home / WORK_DIR).exists()
    assert check_consistent(home / "idx") == before


def test_second_ingest_stops_with_a_clear_message_and_readers_see_commits(tmp_path, ollama):
    home = tmp_path / "home"
    first = write_corpus(tmp_path / "a", 10, seed=1)
    more = write_corpus(tmp_path / "b", 60, seed=2)
    clean_build(home, ollama, first, name="idx")
    ollama.delay = 0.03  # commits land one by one while the readers below look
    hold = hold_batch(ollama, 1)
    proc = start_ingest(ollama, home, str(first), str(more), "--index", "idx")
    try:
        assert held(hold, proc), "the ingest ended before its first batch"
        # The first writer holds the lock, waiting for its first batch.
        # A second writer, through the CLI: one line, exit status 4.
        result = CliRunner().invoke(
            cli, ["ingest", str(first), "--index", "idx"], catch_exceptions=False,
            env={"RAGKIT_HOME": str(home), "OLLAMA_HOST": ollama.url, "RAGKIT_BACKEND": "ollama"})
        assert result.exit_code == 4
        assert result.stderr.splitlines()[-1] == (
            f"error: index {home / 'idx'} is being written by another ragkit process — "
            "wait for it to finish")
        assert "Traceback" not in result.output
        # And through the library.
        with Index.open("idx", home=home, backend="ollama", host=ollama.url) as other:
            with pytest.raises(IndexBusyError):
                other.ingest([first])
            hold.release()
            # Readers see whole committed files only, and more of them as commits land.
            # (The last look is taken after the writer exited, so it sees the final commit.)
            seen = []
            while True:
                finished = proc.poll() is not None
                hits = other.search("sentence", k=1000, mode="vector")
                files = other._store.files()
                counts = Counter(h.source for h in hits)
                assert all(counts[path] == files[path].chunks for path in counts)
                seen.append(len(counts))
                if finished:
                    break
                time.sleep(0.05)
        assert proc.wait(timeout=60) == 0
        assert seen == sorted(seen) and seen[-1] == 70
    finally:
        hold.release()
        kill(proc)


def test_two_first_builds_at_once_the_second_is_refused(tmp_path, ollama):
    home = tmp_path / "home"
    corpus = write_corpus(tmp_path / "c", 30)
    late = Index.open("new", home=home, create=True, backend="ollama", host=ollama.url)
    hold = hold_batch(ollama, 1)
    proc = start_ingest(ollama, home, str(corpus), "--index", "new")
    try:
        assert held(hold, proc), "the first build ended before its first batch"
        with pytest.raises(IndexBusyError):
            late.ingest([corpus])
        hold.release()
        assert proc.wait(timeout=60) == 0
    finally:
        hold.release()
        kill(proc)
        late.close()
    assert check_consistent(home / "new") == clean_build(home, ollama, corpus)


def test_ctrl_c_keeps_what_was_committed_and_says_so(tmp_path, ollama):
    files = 120  # some 30 batches
    corpus = write_corpus(tmp_path / "corpus", files)
    home = tmp_path / "home"
    hold = hold_batch(ollama, 8)  # the files of the batches before it get committed
    proc = start_ingest(ollama, home, str(corpus), "--index", "idx")
    try:
        assert held(hold, proc), "the ingest ended before its eighth batch"
        wait_for_commits(proc, home / "idx", 5)
        kept = committed_files(home / "idx")
        proc.send_signal(signal.SIGINT)
        # The ingest is still blocked on the held batch: the signal interrupts it there.
        # (Let the request go, so the process's threads can finish once it stops.)
        ollama.delay = 0.2  # what is left takes seconds: the signal lands long before
        hold.release()
        assert proc.wait(timeout=30) == 130
        assert proc.stderr is not None
        assert proc.stderr.read().decode().splitlines()[-1] == (
            "ragkit: interrupted — whatever was committed is kept")
    finally:
        hold.release()
        kill(proc)
    assert committed_files(home / "idx") >= kept
    check_consistent(home / "idx")
    ollama.delay = 0
    with Index.open("idx", home=home, backend="ollama", host=ollama.url) as index:
        report = index.ingest([corpus], batch_size=8)
    assert report.unchanged >= kept and len(report.added) + report.unchanged == files
    assert check_consistent(home / "idx") == clean_build(home, ollama, corpus)


def test_kill_9_inside_a_streamed_big_file_keeps_the_files_before_it_and_nothing_of_it(
        tmp_path, ollama):
    from ragkit.loading.kinds import STREAM_ABOVE

    rng = random.Random(7)
    corpus = write_corpus(tmp_path / "corpus", 10)
    big = corpus / "zz-big.txt"  # walked after the small files
    with open(big, "w", encoding="utf-8") as fh:
        n = 0
        while fh.tell() <= STREAM_ABOVE:
            fh.write(f"big sentence {n} is about " + " ".join(rng.choices(WORDS, k=12)) + ".\n")
            n += 1
    home = tmp_path / "home"
    root = home / "idx"
    hold = hold_batch(ollama, 40)  # the small files take ~5 batches: this is the big one's
    proc = start_ingest(ollama, home, str(corpus), "--index", "idx")
    assert held(hold, proc), "the ingest ended before its 40th batch"
    assert kill(proc)
    hold.release()
    # The small files were committed before the big one began; of the big one, nothing.
    pairs = check_consistent(root)
    assert {path for path, _ in pairs} == {str(p) for p in corpus.glob("doc*.txt")}
    check_searchable(root, ollama)
    with Index.open("idx", home=home, backend="ollama", host=ollama.url) as index:
        report = index.ingest([corpus], batch_size=8)
    assert report.unchanged == 10 and report.added == [str(big)]
    assert check_consistent(root) == clean_build(home, ollama, corpus)
