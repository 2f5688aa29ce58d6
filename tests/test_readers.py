"""Searching while an ingest runs: from threads sharing the writer's ``Index``, and from
other processes.  No crash, and every search sees whole committed files only.

The scenario and the corpus are in ``readers_stress.py`` (spawned processes import it).
Both tests run their readers and writer in spawned processes, so that a crash (SIGSEGV)
fails the test instead of killing the test run.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import readers_stress as rs
from ollama_server import features

from ragkit import Index
from ragkit.loading import kinds

THREADS = 4  # the reproduction: 4 threads search while the main one ingests
PROCESSES = 2


def committed(index_path: Path) -> dict[int, tuple[str, bool]]:
    """Every chunk of the final index: id -> (path, marked)."""
    db = sqlite3.connect(f"file:{index_path / 'chunks.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id, path, text FROM chunks").fetchall()
    finally:
        db.close()
    return {cid: (path, bool(rs.MARKS & set(features(text)))) for cid, path, text in rows}


def check_whole_files(searches: list[Any], final: dict[int, tuple[str, bool]],
                      initial: set[str], big: str) -> None:
    """Every search saw, of each file, all of its marked chunks or none, and only commits."""
    whole: dict[str, set[int]] = defaultdict(set)
    for cid, (path, marked) in final.items():
        if marked:
            whole[path].add(cid)
    assert sum(map(len, whole.values())) <= rs.K - 5, "the corpus must fit in one search"
    assert len(whole[big]) >= 5, "the big file must have marked chunks in many parts"
    errors = [s[2] for s in searches if s[0] == "error"]
    assert not errors, f"{len(errors)} searches failed, e.g. {errors[0]}"
    in_between = 0
    for mode, round_no, hits in searches:
        seen: dict[str, set[int]] = defaultdict(set)
        for cid, path, marked, has_cosine in hits:
            assert final.get(cid, (None,))[0] == path, f"chunk {cid} of {path} was never committed"
            assert has_cosine, f"{mode} hit {cid} has no cosine (its vector was not found)"
            if marked:
                seen[path].add(cid)
        for path, ids in seen.items():
            assert ids == whole[path], (
                f"a {mode} search in round {round_no} saw {len(ids)} of the "
                f"{len(whole[path])} marked chunks of {Path(path).name}")
        files = set(seen)
        in_between += initial < files < set(whole) and big not in files
    assert in_between, "no search ran between the first and the last commit"


def test_threads_searching_the_ingesting_index_see_whole_files_and_do_not_crash(
        tmp_path, ollama):
    first, second, big = rs.write_corpus(tmp_path / "corpus")
    index_path, out = tmp_path / "idx", tmp_path / "threads.json"
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=rs.threads_scenario,
                       args=(str(index_path), str(first), str(second), ollama.url, THREADS,
                             str(out)))
    proc.start()
    proc.join(timeout=2 * rs.HANG_GUARD)
    if proc.exitcode is None:
        proc.kill()
    assert proc.exitcode == 0, f"the searching process ended with status {proc.exitcode}"
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["missed"] == 0 and result["rounds"] > 10
    initial = {str(p) for p in first.glob("*.txt")}
    check_whole_files(result["searches"], committed(index_path), initial, str(big))


def test_other_processes_searching_during_an_ingest_see_whole_files(
        tmp_path, ollama, monkeypatch):
    first, second, big = rs.write_corpus(tmp_path / "corpus")
    index_path = tmp_path / "idx"
    monkeypatch.setattr(kinds, "STREAM_ABOVE", rs.STREAM_ABOVE)
    ctx = multiprocessing.get_context("spawn")
    hs = rs.Handshake(PROCESSES, ctx)
    outs = [tmp_path / f"reader{n}.json" for n in range(PROCESSES)]
    with Index.open(index_path, create=True, backend="ollama", host=ollama.url) as index:
        index.ingest([first], batch_size=rs.BATCH)
        procs = [ctx.Process(target=rs.reader_process,
                             args=(str(index_path), ollama.url, hs, n, str(outs[n])))
                 for n in range(PROCESSES)]
        for proc in procs:
            proc.start()
        hs.alive = lambda: all(p.is_alive() for p in procs)
        try:
            hs.wait(0)
            index.ingest([second], batch_size=rs.BATCH, progress=hs.sync)
        finally:
            hs.stop.set()
            for proc in procs:
                proc.join(timeout=2 * rs.HANG_GUARD)
                if proc.exitcode is None:
                    proc.kill()
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert hs.missed.value == 0 and hs.round.value > 10
    searches = [s for out in outs for s in json.loads(out.read_text(encoding="utf-8"))]
    initial = {str(p) for p in first.glob("*.txt")}
    check_whole_files(searches, committed(index_path), initial, str(big))
