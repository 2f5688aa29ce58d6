"""``ragkit watch`` / ``Index.watch``: real file events on a temp folder, real HTTP embeddings.

The watcher runs in a thread (or as a real ``python -m ragkit watch`` process
for ``kill -9``) against the Ollama-protocol test server.  Every test waits for
a condition with a deadline (:func:`wait_until`), never for a fixed time.
"""

from __future__ import annotations

import io
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from ollama_server import FakeOllama
from test_crash import (
    ROOT,
    check_consistent,
    child_env,
    clean_build,
    kill,
    write_corpus,
    write_doc,
)

import ragkit.ingest.watch as watching
from ragkit import Index
from ragkit.cli.watching import WatchDisplay
from ragkit.ingest.prepare import Problem
from ragkit.ingest.reports import IngestReport
from ragkit.ingest.watch import rescan_targets
from ragkit.store.local import Store
from ragkit.store.tables import path_from_db

DEADLINE = 60.0


def wait_until(condition, what: str, watcher: Watching | None = None,
               deadline: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if watcher is not None and watcher.errors:
            raise watcher.errors[0]
        assert time.monotonic() < end, f"timed out waiting for: {what}"
        time.sleep(0.02)


def indexed(root: Path) -> dict[str, int]:
    """The files committed to the index at ``root``, with their chunk counts ({} if none)."""
    if not Store.exists(root):
        return {}
    db = sqlite3.connect(f"file:{root / 'chunks.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return {path_from_db(p): n for p, n in db.execute("SELECT path, chunks FROM files")}
    except sqlite3.OperationalError:  # the schema is not written yet
        return {}
    finally:
        db.close()


class Watching:
    """``Index.watch`` in a thread, its events collected."""

    def __init__(self, index: Index, *paths: Path, **options) -> None:
        self.stop = threading.Event()
        self.events: list[watching.WatchEvent] = []
        self.errors: list[BaseException] = []
        options.setdefault("debounce", 0.1)
        self.thread = threading.Thread(target=self._run, args=(index, paths, options),
                                       daemon=True)
        self.thread.start()

    def _run(self, index: Index, paths: tuple[Path, ...], options: dict) -> None:
        try:
            index.watch(list(paths), self.stop, on_event=self.events.append, **options)
        except BaseException as exc:
            self.errors.append(exc)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def ready(self) -> None:
        wait_until(lambda: "ready" in self.kinds(), "the watcher to catch up", self)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the watcher did not stop"
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> Watching:
        """Caught up (:meth:`ready`); stopped again on the way out, whatever happens."""
        try:
            self.ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def index(env, ollama):
    with Index.open("w", create=True, backend="ollama", host=ollama.url) as ix:
        yield ix


def key(path: Path) -> str:
    return str(path.resolve())


def found(home: Path, ollama, query: str) -> list[str]:
    """The files of the hits of ``query`` in index ``w`` (keyword search: exact words)."""
    with Index.open("w", home=home, backend="ollama", host=ollama.url) as ix:
        return [hit.source for hit in ix.search(query, k=3, mode="keyword")]


def test_add_change_delete_move_and_new_folders_follow_the_folder(index, env, ollama, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.md").write_text("# First\n\nThe aardvark lives in Africa.\n")
    with Watching(index, docs) as w:
        assert set(indexed(index.path)) == {key(docs / "first.md")}  # the catch-up

        (docs / "added.txt").write_text("The heron fishes in the pond.\n")
        wait_until(lambda: key(docs / "added.txt") in indexed(index.path), "an added file", w)

        (docs / "added.txt").write_text("The pelican replaced the bird that fished.\n")
        wait_until(lambda: found(env, ollama, "pelican") == [key(docs / "added.txt")],
                   "the changed text to be searchable", w)
        assert found(env, ollama, "heron") == []  # the old chunks are gone

        (docs / "added.txt").rename(docs / "renamed.txt")
        wait_until(lambda: set(indexed(index.path)) ==
                   {key(docs / "first.md"), key(docs / "renamed.txt")}, "a rename", w)

        (docs / "deep" / "er").mkdir(parents=True)
        (docs / "deep" / "er" / "nested.md").write_text("A wombat digs burrows.\n")
        (docs / "deep" / "side.md").write_text("A quokka smiles.\n")
        wait_until(lambda: {key(docs / "deep" / "er" / "nested.md"),
                            key(docs / "deep" / "side.md")} <= set(indexed(index.path)),
                   "the files of a new folder", w)

        (docs / "deep").rename(docs / "moved")  # a folder moved: its files are found anew
        (docs / "first.md").unlink()
        (docs / ".hidden.md").write_text("a hidden note is never indexed\n")
        (docs / ".git").mkdir()
        (docs / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        expected = {key(docs / "renamed.txt"), key(docs / "moved" / "er" / "nested.md"),
                    key(docs / "moved" / "side.md")}
        wait_until(lambda: set(indexed(index.path)) == expected, "a move and a delete", w)
        assert found(env, ollama, "wombat") == [key(docs / "moved" / "er" / "nested.md")]
    assert set(indexed(index.path)) == expected  # hidden files and .git stayed out


def test_a_burst_of_500_files_goes_through_the_batched_embedder(index, ollama, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "seed.md").write_text("the seed file\n")
    with Watching(index, docs) as w:
        before = len(ollama.bodies("/api/embed"))
        for i in range(500):
            (docs / f"n{i:03d}.txt").write_text(f"note {i} about topic {i % 7}\n")
        wait_until(lambda: len(indexed(index.path)) == 501, "500 files indexed", w)
    requests = len(ollama.bodies("/api/embed")) - before
    # 500 one-chunk files in requests of up to 64 texts: a handful of requests, not 500.
    assert requests <= 40, f"{requests} embedding requests for 500 files"
    assert check_consistent(index.path)


def test_a_failing_file_is_reported_and_watching_goes_on(index, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("fine text\n")
    with Watching(index, docs) as w:
        (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage that is no PDF at all")
        wait_until(lambda: any(p.path.endswith("broken.pdf") for e in w.events if e.report
                               for p in e.report.failed), "the failure to be reported", w)
        (docs / "after.md").write_text("the watcher is still alive\n")
        wait_until(lambda: key(docs / "after.md") in indexed(index.path), "a later file", w)
    assert key(docs / "broken.pdf") not in indexed(index.path)


def test_the_server_going_away_is_waited_out_and_said_once(
        index, ollama, tmp_path, monkeypatch, sleeps):
    # `sleeps` makes the client's own retries instant; the watcher retries fast here.
    monkeypatch.setattr(watching, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(watching, "RETRY_MOST", 0.05)
    tries = []
    real = watching._Syncer._ingest
    monkeypatch.setattr(watching._Syncer, "_ingest",
                        lambda self, targets: tries.append(1) or real(self, targets))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("fine text\n")
    port = int(ollama.url.rsplit(":", 1)[1])
    with Watching(index, docs) as w:
        ollama.fail("/api/embed", "drop", times=10_000)  # kept-alive connections die too
        ollama.stop()
        (docs / "while-down.md").write_text("written while the server was away\n")
        wait_until(lambda: "waiting" in w.kinds(), "the outage to be said", w)
        start = len(tries)
        wait_until(lambda: len(tries) >= start + 5, "several retries", w)
        with FakeOllama(port=port):
            wait_until(lambda: key(docs / "while-down.md") in indexed(index.path),
                       "the file indexed once the server is back", w)
    assert w.kinds().count("waiting") == 1  # said once, not at every retry
    assert w.kinds().count("resumed") == 1
    said = next(e for e in w.events if e.kind == "waiting").message
    assert "cannot reach Ollama" in said or "closed the connection" in said, said
    assert "ingest stopped" not in said  # not ingest's advice to run it again


def test_a_second_watcher_or_ingest_is_refused_while_one_watches(index, run, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("fine text\n")
    with Watching(index, docs):
        for command in ("watch", "ingest"):
            result = run(command, str(docs), "--index", "w")
            assert result.exit_code == 4, result.output
            assert "being written by another ragkit process" in result.stderr
    assert run("ingest", str(docs), "--index", "w").exit_code == 0  # the lock went with it


def test_an_empty_folder_is_watched_until_its_first_file_makes_the_index(
        index, run, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    with Watching(index, docs) as w:
        assert not Store.exists(index.path)  # nothing to index: no index yet, still watching
        (docs / "sub").mkdir()
        (docs / "sub" / "first.md").write_text("the first note\n")
        wait_until(lambda: key(docs / "sub" / "first.md") in indexed(index.path),
                   "the first file to create the index", w)
        wait_until(lambda: w.kinds().count("synced") >= 2, "the commit to be reported", w)
        result = run("watch", str(docs), "--index", "w")  # the new index is held too
        assert result.exit_code == 4, result.output


def start_watch(server, home: Path, folder: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    """``ragkit watch`` as a process; its stderr lines are collected as they come."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragkit", "watch", str(folder), "--index", "w",
         "--batch-size", "8", "--debounce", "0.1"],
        env=child_env(server, home), cwd=str(ROOT), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            lines.append(raw.decode(errors="replace"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def test_kill_9_at_any_moment_then_a_restart_equals_a_clean_build(tmp_path, ollama):
    home, docs = tmp_path / "home", write_corpus(tmp_path / "docs", 10)
    rng = random.Random(13)
    ollama.delay = 0.02  # slow embeddings, so that kills land mid-batch
    for round_ in range(3):
        proc, lines = start_watch(ollama, home, docs)
        wait_until(lambda p=proc, ls=lines: any("watching" in ln for ln in ls) or
                   p.poll() is not None, "the watcher to catch up")
        assert proc.poll() is None, "".join(lines)
        # A burst of new, changed and deleted files; the kill lands somewhere inside it.
        for i in range(25):
            write_doc(docs / f"r{round_}-{i:02d}.txt", f"round{round_} file{i}", rng)
        for victim in rng.sample(sorted(docs.glob("doc*.txt")), 2):
            if rng.random() < 0.5:
                victim.unlink()
            else:
                write_doc(victim, f"changed{round_}", rng)
        target = len(indexed(home / "w")) + rng.randint(1, 10)
        wait_until(lambda n=target: len(indexed(home / "w")) >= n, "some commits before the kill")
        assert kill(proc), "the watcher ended by itself"
        assert proc.stdout is not None
        proc.stdout.close()
        check_consistent(home / "w")  # whole after every kill
    proc, lines = start_watch(ollama, home, docs)
    try:
        wanted = {key(p) for p in docs.iterdir()}
        wait_until(lambda: set(indexed(home / "w")) == wanted, "the restart to catch up")
        wait_until(lambda: any("watching" in ln for ln in lines), "the watcher to be ready")
        # Idle: the restarted watcher's own lock is the only thing between it and us.
    finally:
        proc.terminate()  # SIGTERM: as Ctrl-C
        assert proc.wait(30) == 130, "".join(lines)
        out = proc.stdout.read().decode() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    assert check_consistent(home / "w") == clean_build(home, ollama, docs)
    assert " added " in out  # one line per committed change, when not a terminal
    assert "stopped watching" in "".join(lines)


def test_serve_watch_serves_while_keeping_the_index_in_step(env, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.md").write_text("The aardvark lives in Africa.\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragkit", "serve", "--listen", "127.0.0.1:0", "--watch",
         str(docs), "--index", "w"], env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        lines.extend(raw.decode(errors="replace") for raw in proc.stderr)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(" on http://" in ln for ln in lines) or proc.poll() is not None,
                   "the server to start")
        url = re.search(r" on (http://\S+)", "".join(lines))
        assert url, "".join(lines)  # the new index was built from the folder, then served

        def hits(query: str) -> list[str]:
            reply = httpx.post(url.group(1) + "/indexes/w/search",
                               json={"query": query, "retrieval": "keyword"}, timeout=30)
            return [h["source"] for h in reply.json()["hits"]]

        assert hits("aardvark")
        (docs / "later.md").write_text("A pangolin rolls into a ball.\n")
        wait_until(lambda: hits("pangolin"), "a file written while serving to be found")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        reader.join(10)
    assert "building index 'w'" in "".join(lines)
    assert "Traceback" not in "".join(lines)


def test_rescan_targets_walk_as_little_as_covers_every_change(tmp_path, monkeypatch):
    root = tmp_path / "docs"
    (root / "sub" / "new").mkdir(parents=True)
    (root / "a.md").write_text("a")
    (root / "sub" / "b.md").write_text("b")
    (root / "elsewhere.md").symlink_to(root / "a.md")
    changed = [root / "a.md", root / "sub" / "gone.md", root / "sub" / "new",
               root / "elsewhere.md", tmp_path / "outside.md"]
    # a changed file itself; a deleted one through its folder (which covers the new folder
    # in it); a link through its folder; nothing outside the roots
    assert rescan_targets(map(str, changed), [root]) == [root]
    assert rescan_targets([str(root / "a.md"), str(root / "sub" / "gone.md")], [root]) == [
        root / "a.md", root / "sub"]
    monkeypatch.setattr(watching, "MAX_TARGETS", 1)  # too many paths: folded into folders
    assert rescan_targets([str(root / "a.md"), str(root / "sub" / "b.md")], [root]) == [root]
    gone = tmp_path / "gone.md"
    assert rescan_targets([str(gone)], [gone]) == []  # a watched file that is gone: left


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_status_line_and_a_log_one_line_per_change(monkeypatch, capsys):
    report = IngestReport(added=["/x/new.md"], updated=["/x/old.md"], removed=["/x/gone.md"],
                          skipped=[Problem("/x/p.png", "unsupported file type .png")],
                          total_chunks=12)
    log = io.StringIO()
    display = WatchDisplay("notes", ("x",), out=log, err=io.StringIO())
    for _ in range(2):
        display.event(watching.WatchEvent("synced", report))
    lines = log.getvalue().splitlines()
    assert [ln.split(" ", 2)[2] for ln in lines[:3]] == [
        "added /x/new.md", "updated /x/old.md", "removed /x/gone.md"]
    assert len(lines) == 6
    assert capsys.readouterr().err.count("skipped /x/p.png") == 1  # said once

    monkeypatch.delenv("TERM", raising=False)
    term, err = _Terminal(), _Terminal()
    live = WatchDisplay("notes", ("x",), out=term, err=err)
    assert live.live
    live.event(watching.WatchEvent("synced", report))
    assert term.getvalue() == ""  # no per-change lines on a terminal
    assert "\rwatching 'notes' · 12 chunks · last: " in err.getvalue()
    assert "removed /x/gone.md" in err.getvalue()
