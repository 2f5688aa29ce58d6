"""Searches during an ingest, for tests/test_readers.py (also run in spawned processes).

The corpus makes "whole files only" checkable.  Every chunk either holds the
query's words (``alpha``, ``backup``) or shares no hashed feature with them
(see :func:`filler_words`), so with the test server's embeddings a marked
chunk scores above zero in every mode and an unmarked one scores zero or is
not found at all.  There are fewer marked chunks than ``K``, so a search
returns every marked chunk it can see: for each file, either all of its
marked chunks or none of them, unless the reader sees part of a file.

Each search is recorded as ``[mode, round, [[id, path, marked, has_cosine], ...]]``.
The writer's progress callback (:meth:`Handshake.sync`) waits after every
batch until each reader has finished a search begun after it, so readers
look at the index while the ingest is in every one of its states, including
inside a streamed file whose parts are written but not committed.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ollama_server import DIM, features

QUERY = "alpha backup"
MARKS = frozenset(features(QUERY))
MODES = ("vector", "keyword", "hybrid")
K = 50
STREAM_ABOVE = 30_000  # the big file (about 60 KB) is streamed in parts
BATCH = 8  # chunks per embedding request: many commits, and a big file in many parts
HANG_GUARD = 60.0  # seconds: a reader or the writer stops waiting after this


def filler_words(count: int = 300, seed: int = 5) -> list[str]:
    """Made-up words whose hashed features collide with neither query word."""
    taken = {zlib.crc32(m.encode()) % DIM for m in MARKS}
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < count:
        word = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))
        if zlib.crc32(word.encode()) % DIM not in taken:
            words.add(word)
    return sorted(words)


def write_text(path: Path, paragraphs: int, marked: set[int], rng: random.Random,
               words: list[str]) -> None:
    """A text file of ``paragraphs`` of 60 filler words; those in ``marked`` end with the query."""
    out = []
    for n in range(paragraphs):
        text = " ".join(rng.choices(words, k=60))
        out.append(f"{text} {QUERY}." if n in marked else f"{text}.")
    path.write_text("\n\n".join(out) + "\n", encoding="utf-8")


def write_corpus(root: Path) -> tuple[Path, Path, Path]:
    """``first`` (indexed before the readers start), ``second`` and its big file."""
    rng, words = random.Random(9), filler_words()
    first, second = root / "first", root / "second"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    for n in range(3):  # two chunks each, both marked
        write_text(first / f"p{n}.txt", 6, {0, 5}, rng, words)
    for prefix, count in (("a", 40), ("z", 20)):  # walked before and after the big file
        for n in range(count):
            probe = n % 10 == 3
            write_text(second / f"{prefix}{n:03}.txt", 6 if probe else 1,
                       {0, 5} if probe else set(), rng, words)
    big = second / "m-big.txt"
    write_text(big, 150, set(range(5, 150, 20)), rng, words)
    return first, second, big


class Handshake:
    """Lets the writer wait until every reader has searched the index's current state."""

    def __init__(self, readers: int, ctx: Any = multiprocessing) -> None:
        self.round = ctx.Value("i", 0)
        self.done = ctx.Array("i", [-1] * readers)
        self.stop = ctx.Event()
        self.missed = ctx.Value("i", 0)  # rounds not waited for: a reader died or hung
        # Whether the readers still run: set once they are started (not sent to them).
        self.alive: Callable[[], bool] | None = None

    def wait(self, round_no: int) -> None:
        """Block until each reader finished a search begun in ``round_no`` or later."""
        deadline = time.monotonic() + HANG_GUARD
        while min(self.done[:]) < round_no:
            gone = self.alive is not None and not self.alive()
            if self.missed.value or gone or time.monotonic() > deadline:
                self.missed.value += 1
                return
            time.sleep(0.001)

    def sync(self, _progress: object = None) -> None:
        """The writer's progress callback: start a round and wait for the readers."""
        with self.round.get_lock():
            self.round.value += 1
            round_no = self.round.value
        self.wait(round_no)


def search_loop(index: Any, hs: Handshake, reader: int, out: list[Any],
                reopen: Callable[[], Any] | None = None) -> None:
    """Search until told to stop (or the hang guard passes), recording every result.

    With ``reopen``, every third search opens the index afresh (during the ingest).
    """
    deadline = time.monotonic() + HANG_GUARD
    n = 0
    while not hs.stop.is_set() and time.monotonic() < deadline:
        round_no, mode = hs.round.value, MODES[(n + reader) % len(MODES)]
        try:
            if reopen is not None and n % 3 == 2:
                with reopen() as fresh:
                    hits = fresh.search(QUERY, k=K, mode=mode)
            else:
                hits = index.search(QUERY, k=K, mode=mode)
        except Exception as exc:  # recorded: the test asserts there is none
            out.append(["error", round_no, repr(exc)])
            hs.done[reader] = 1 << 30  # do not hold the writer up
            return
        out.append([mode, round_no, [[h.id, h.path, bool(MARKS & set(features(h.text))),
                                      h.cosine is not None] for h in hits]])
        hs.done[reader] = round_no
        n += 1


def reader_process(index_path: str, url: str, hs: Handshake, reader: int, out: str) -> None:
    """A separate process: open the index itself and search it in a loop."""
    from ragkit import Index

    searches: list[Any] = []
    with Index.open(index_path, backend="ollama", host=url) as index:
        search_loop(index, hs, reader, searches,
                    reopen=lambda: Index.open(index_path, backend="ollama", host=url))
    Path(out).write_text(json.dumps(searches), encoding="utf-8")


def threads_scenario(index_path: str, first: str, second: str, url: str, readers: int,
                     out: str) -> None:
    """One process: ``readers`` threads search the very ``Index`` object that ingests."""
    from ragkit import Index
    from ragkit.loading import kinds

    kinds.STREAM_ABOVE = STREAM_ABOVE
    index = Index.open(index_path, create=True, backend="ollama", host=url)
    index.ingest([first], batch_size=BATCH)
    hs = Handshake(readers)
    results: list[list[Any]] = [[] for _ in range(readers)]
    threads = [threading.Thread(target=search_loop, args=(index, hs, n, results[n]))
               for n in range(readers)]
    for thread in threads:
        thread.start()
    hs.alive = lambda: all(t.is_alive() for t in threads)
    try:
        hs.wait(0)
        index.ingest([second], batch_size=BATCH, progress=hs.sync)
    finally:
        hs.stop.set()
        for thread in threads:
            thread.join()
        index.close()
    Path(out).write_text(json.dumps({"searches": [s for r in results for s in r],
                                     "rounds": hs.round.value, "missed": hs.missed.value}),
                         encoding="utf-8")
