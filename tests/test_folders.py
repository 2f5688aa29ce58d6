"""Index folders: ragkit creates, rebuilds and deletes only what it made, never a user's file.

Every case goes through the CLI (click's CliRunner, or a real subprocess where
file permissions matter) against the Ollama-protocol test server.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_crash import child_env, held, hold_batch, kill, start_ingest, write_corpus

from ragkit import Index
from ragkit.cli.main import cli
from ragkit.errors import IndexNotFoundError
from ragkit.store.building import WORK_DIR

ROOT = Path(__file__).resolve().parents[1]


def error_line(result) -> str:
    """The one error line; asserts there is exactly one and no traceback."""
    assert "Traceback" not in result.output and "internal error" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if not ln.startswith("ragkit: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder``: file contents, None for folders.

    SQLite's own ``-wal`` and ``-shm`` companions are left out: a reader in WAL
    mode may leave them (empty of data) next to the database.
    """
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*")) if not p.name.endswith(("-wal", "-shm"))}


def searchable(run, index: str) -> bool:
    result = run("search", "backups at night", "--index", index)
    return result.exit_code == 0 and "backups.md" in result.stdout


# -- user files are never deleted ----------------------------------------------------------


def test_rebuild_and_delete_keep_the_users_files_in_the_index_folder(run, docs, tmp_path):
    proj = tmp_path / "proj"
    assert run("ingest", str(docs), "--index", str(proj)).exit_code == 0
    (proj / "thesis.tex").write_text("my only copy\n")
    (proj / "chapters").mkdir()
    (proj / "chapters" / "one.tex").write_text("chapter one\n")
    (proj / ".notes.tmp").write_text("not ragkit's temp file\n")
    mine = {k: v for k, v in tree(proj).items()
            if k in ("thesis.tex", "chapters", "chapters/one.tex", ".notes.tmp")}

    rebuilt = run("ingest", str(docs), "--index", str(proj), "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert {k: v for k, v in tree(proj).items() if k in mine} == mine
    assert searchable(run, str(proj))
    assert not (tmp_path / WORK_DIR).exists()
    again = run("ingest", str(docs), "--index", str(proj))  # an incremental run keeps them too
    assert again.exit_code == 0 and "4 unchanged" in again.stdout
    assert {k: v for k, v in tree(proj).items() if k in mine} == mine

    deleted = run("indexes", "delete", str(proj), "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert tree(proj) == mine  # only ragkit's own files went
    assert deleted.stdout.splitlines() == [
        f"deleted index '{proj}'",
        f"kept 3 other item(s) in {proj}: .notes.tmp, chapters, thesis.tex"]
    assert run("search", "x", "--index", str(proj)).exit_code == 4  # the index is gone


def test_a_rebuild_killed_mid_swap_gives_the_users_files_back(run, docs, env):
    """Killed between the swap and moving the user's files over: the next ingest moves them."""
    assert run("ingest", str(docs), "--index", "idx").exit_code == 0
    dead = env / WORK_DIR / "idx.building-999999"  # the old index, as a swap leaves it
    dead.mkdir(parents=True)
    for name in ("manifest.json", "chunks.sqlite", "vectors-3.faiss", ".lock"):
        (dead / name).write_text("old index\n")
    (dead / "thesis.tex").write_text("my only copy\n")
    (dead / "figures").mkdir()
    (dead / "figures" / "plot.png").write_bytes(b"png")
    other = env / WORK_DIR / "idx.v2.building-999999"  # another index's: not idx's to touch
    other.mkdir()
    (other / "theirs.txt").write_text("theirs\n")
    assert run("ingest", str(docs), "--index", "idx").exit_code == 0
    assert (env / "idx" / "thesis.tex").read_text() == "my only copy\n"
    assert (env / "idx" / "figures" / "plot.png").read_bytes() == b"png"
    assert [p.name for p in (env / WORK_DIR).iterdir()] == ["idx.v2.building-999999"]
    assert (other / "theirs.txt").read_text() == "theirs\n"
    assert searchable(run, "idx")


def test_a_first_build_into_a_folder_of_other_files_is_refused(run, docs, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "thesis.tex").write_text("thesis\n")
    result = run("ingest", str(docs), "--index", str(proj))
    assert result.exit_code == 4
    assert error_line(result) == (
        f"error: {proj} is not empty and is not a ragkit index (it holds 'thesis.tex') — "
        "ragkit creates an index only in a new or empty folder: pass --index a new name "
        "or path")
    assert tree(proj) == {"thesis.tex": b"thesis\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "proj"]  # no work folder
    # An empty folder is fine, and so is a new one.
    (proj / "thesis.tex").unlink()
    assert run("ingest", str(docs), "--index", str(proj)).exit_code == 0
    assert searchable(run, str(proj))


def test_documents_and_their_index_are_kept_apart(run, docs, tmp_path, monkeypatch):
    before = tree(docs)
    result = run("ingest", str(docs), "--index", str(docs), "--rebuild")
    assert result.exit_code == 4 and "is not empty and is not a ragkit index" in error_line(result)
    assert tree(docs) == before
    # An existing index given as the documents to index, or a folder inside it: refused.
    idx = tmp_path / "idx"
    assert run("ingest", str(docs), "--index", str(idx)).exit_code == 0
    index_files = tree(idx)
    (idx / "notes").mkdir()
    for args in ([str(idx), "--index", str(idx), "--rebuild"],
                 [str(idx / "notes"), "--index", str(idx)]):
        result = run("ingest", *args)
        assert result.exit_code == 2, args
        where = "is the index folder" if args[0] == str(idx) else "is inside the index folder"
        assert error_line(result) == (
            f"error: {args[0]} {where} {idx} — keep documents and index apart: choose "
            "another --index (a name puts it under RAGKIT_HOME)")
    (idx / "notes").rmdir()
    assert tree(idx) == index_files
    # An index inside the folder being indexed is left out of the walk, rebuild or not.
    monkeypatch.setenv("RAGKIT_HOME", str(docs / "indexes"))
    for extra in ([], [], ["--rebuild"]):
        result = run("ingest", str(docs), *extra)
        assert result.exit_code == 0, result.output
        assert "skipped" not in result.stdout.replace("0 skipped", "")
    with Index.open("default", backend="ollama") as index:
        assert sorted(Path(p).name for p in index._store.files()) == [
            "backups.md", "garden.txt", "manual.pdf", "panda.md"]
    assert {k: v for k, v in tree(docs).items() if not k.startswith("indexes")} == before


def test_an_index_at_dot_dot_is_refused_and_deleting_it_touches_nothing(run, docs, tmp_path,
                                                                        monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    result = run("ingest", str(docs), "--index", "..")
    assert result.exit_code == 4 and "is not empty and is not a ragkit index" in error_line(result)
    deleted = run("indexes", "delete", "..", "--yes")
    assert deleted.exit_code == 4
    assert error_line(deleted).startswith("error: no index '..' in ")
    assert tree(tmp_path) == before


def test_delete_waits_for_no_one_and_refuses_during_an_ingest(run, docs, env):
    assert run("ingest", str(docs), "--index", "busy").exit_code == 0
    writer = Index.open("busy", backend="ollama")
    writer._store.lock()  # what an ingest holds while it writes
    try:
        result = run("indexes", "delete", "busy", "--yes")
        assert result.exit_code == 4
        assert error_line(result) == (f"error: index {env / 'busy'} is being written by "
                                      "another ragkit process — wait for it to finish")
        assert searchable(run, "busy")
    finally:
        writer.close()
    assert run("indexes", "delete", "busy", "--yes").exit_code == 0
    assert not (env / "busy").exists()


def test_a_linked_index_stays_a_link_through_rebuild_and_delete(run, docs, env, tmp_path):
    target = tmp_path / "elsewhere" / "real"
    target.mkdir(parents=True)
    env.mkdir()
    (env / "linked").symlink_to(target)
    assert run("ingest", str(docs), "--index", "linked").exit_code == 0
    (target / "keep.txt").write_text("mine\n")
    rebuilt = run("ingest", str(docs), "--index", "linked", "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (env / "linked").is_symlink() and os.readlink(env / "linked") == str(target)
    assert (target / "manifest.json").exists() and (target / "keep.txt").read_text() == "mine\n"
    assert searchable(run, "linked")
    assert sorted(p.name for p in env.iterdir()) == ["linked"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["real"]  # no work folder left
    # Deleting it leaves the user's file, so the folder and the link stay.
    assert run("indexes", "delete", "linked", "--yes").exit_code == 0
    assert tree(target) == {"keep.txt": b"mine\n"} and (env / "linked").is_symlink()
    # With nothing of the user's left, the folder goes, and the link to it.
    (target / "keep.txt").unlink()
    assert run("ingest", str(docs), "--index", "linked").exit_code == 0
    assert run("indexes", "delete", "linked", "--yes").exit_code == 0
    assert not os.path.lexists(env / "linked") and not target.exists()


# -- nothing left behind ---------------------------------------------------------------------


def test_a_first_build_killed_before_its_first_commit_leaves_nothing(tmp_path, ollama):
    corpus = write_corpus(tmp_path / "corpus", 10)
    home = tmp_path / "home"
    hold = hold_batch(ollama, 1)  # the first batch is still being embedded when the kill lands
    proc = start_ingest(ollama, home, str(corpus), "--index", "idx")
    assert held(hold, proc), "the ingest ended before its first batch"
    assert kill(proc)
    hold.release()
    listed = CliRunner().invoke(cli, ["indexes", "list"], env={"RAGKIT_HOME": str(home)})
    assert listed.stdout.startswith("no indexes in ")
    assert [p.name for p in home.iterdir()] == [WORK_DIR]  # hidden, and removed next time
    with pytest.raises(IndexNotFoundError):
        Index.open("idx", home=home, backend="ollama", host=ollama.url)
    rerun = subprocess.run([sys.executable, "-m", "ragkit", "ingest", str(corpus), "--index",
                            "idx"], env=child_env(ollama, home), cwd=str(ROOT),
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "10 added" in rerun.stdout
    assert [p.name for p in home.iterdir()] == ["idx"]


def test_an_ingest_that_indexes_nothing_exits_7_and_creates_nothing(run, docs, env, tmp_path):
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "data.bin").write_bytes(bytes(range(256)) * 4)
    (odd / "blank.txt").write_text("  \n")
    result = run("ingest", str(odd))
    assert result.exit_code == 7
    skipped, failed = [ln for ln in result.stderr.splitlines() if "ed /" in ln]
    assert skipped.startswith(f"ragkit: skipped {odd / 'data.bin'}: ")
    assert failed == f"ragkit: failed {odd / 'blank.txt'}: empty file"
    assert error_line(result) == (
        f"error: no files were indexed from {odd} (1 skipped, 1 failed) — no index was "
        "created; ragkit reads text, markdown, HTML, PDF and source files")
    assert not env.exists() or list(env.iterdir()) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("ingest", str(empty), "--index", "e")
    assert result.exit_code == 7 and "(no files found)" in error_line(result)
    # A rebuild that would index nothing keeps the old index.
    assert run("ingest", str(docs)).exit_code == 0
    before = tree(env / "default")
    result = run("ingest", str(odd), "--rebuild")
    assert result.exit_code == 7
    assert error_line(result).endswith("— the old index is kept as it was; ragkit reads "
                                       "text, markdown, HTML, PDF and source files")
    assert tree(env / "default") == before and searchable(run, "default")
    assert sorted(p.name for p in env.iterdir()) == ["default"]


# -- names and paths -------------------------------------------------------------------------


def test_index_names_that_would_break_a_listing_are_refused_and_old_ones_escaped(run, docs, env):
    result = run("ingest", str(docs), "--index", "two\nlines")
    assert result.exit_code == 2
    assert error_line(result) == ("error: index name 'two\\nlines' contains control or "
                                  "invisible characters — choose a name of letters, digits "
                                  "and punctuation")
    assert run("ingest", str(docs), "--index", "plain").exit_code == 0
    (env / "plain").rename(env / "odd\nname")  # made by hand, or by an older ragkit
    listed = run("indexes", "list")
    assert listed.exit_code == 0
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["odd\\nname"]


def test_bad_index_names_and_paths_are_one_line_not_a_crash(run, docs, env, tmp_path):
    long = "x" * 300
    for args in (["ingest", str(docs), "--index", long], ["search", "q", "--index", long],
                 ["indexes", "info", long], ["indexes", "delete", long, "--yes"],
                 ["ask", "q", "--index", f"{tmp_path}/{long}"]):
        result = run(*args)
        assert result.exit_code == 2, args
        assert error_line(result) == (
            "error: index name 'xxxxxxxxxxxxxxxxxxxx'… is too long (300 characters; a folder "
            "name takes at most 255 bytes) — choose a shorter one")
    for args in (["ingest", str(docs), "--index", "~no-such-user-rk/x"],
                 ["search", "q", "--index", "~no-such-user-rk/x"],
                 ["ingest", "~no-such-user-rk/docs"]):
        result = run(*args)
        assert result.exit_code == 2, args
        assert error_line(result) == ("error: cannot expand '~no-such-user-rk': no such user "
                                      "or home folder — write the path out in full")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not an index\n")
    for args in (["ingest", str(docs), "--index", str(a_file)],
                 ["search", "q", "--index", str(a_file)]):
        result = run(*args)
        assert result.exit_code == 4, args
        assert error_line(result) == (f"error: {a_file} is a file, not an index folder — pass "
                                      "--index a name, or the path of an index folder")
    assert a_file.read_text() == "not an index\n"


def test_indexes_info_takes_the_name_as_an_argument(run, docs, env):
    assert run("ingest", str(docs), "--index", "notes").exit_code == 0
    outputs = [run("indexes", "info", "notes"), run("indexes", "info", "--index", "notes"),
               run("indexes", "info", "notes", "--index", "notes")]
    assert [r.exit_code for r in outputs] == [0, 0, 0]
    assert outputs[0].stdout == outputs[1].stdout == outputs[2].stdout
    assert '"name": "notes"' in outputs[0].stdout
    clash = run("indexes", "info", "notes", "--index", "other")
    assert clash.exit_code == 2
    assert error_line(clash) == ("error: two indexes given, 'notes' and --index 'other' "
                                 "— give one")


# -- folders that cannot be written ----------------------------------------------------------


def _drop_root_powers() -> None:
    """In the child: no overriding file permissions, as for any other user (root ignores them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "cannot drop root's file powers for this test")


def as_user(ollama, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ragkit ARGS`` in a child process bound by file permissions, even when we are root."""
    env = {**child_env(ollama, home), "RAGKIT_MIN_SCORE": "0"}
    return subprocess.run([sys.executable, "-m", "ragkit", *args], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=_drop_root_powers if os.geteuid() == 0 else None)


def read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def writable_again(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_index_is_searchable(run, docs, env, ollama):
    assert run("ingest", str(docs)).exit_code == 0
    assert not (env / "default" / "chunks.sqlite-shm").exists()  # SQLite's WAL index: none yet
    before = tree(env / "default")
    read_only(env / "default")
    try:
        for args in (["search", "backups at night"], ["indexes", "info"],
                     ["ask", "When do backups run?"]):
            result = as_user(ollama, env, *args)
            assert result.returncode == 0, (args, result.stderr)
        assert "backups.md" in as_user(ollama, env, "search", "backups at night").stdout
    finally:
        writable_again(env / "default")
    assert tree(env / "default") == before


def test_an_index_folder_that_cannot_be_written_is_one_line_on_rebuild_and_delete(
        run, docs, env, ollama):
    assert run("ingest", str(docs)).exit_code == 0
    before = tree(env / "default")
    read_only(env / "default")
    try:
        for args in (["ingest", str(docs), "--rebuild"], ["indexes", "delete", "default", "-y"],
                     ["ingest", str(docs)]):
            result = as_user(ollama, env, *args)
            assert result.returncode == 4, (args, result.stderr)
            lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("ragkit: ")]
            assert lines == [f"error: cannot write index folder {env / 'default'} (Permission "
                             "denied) — give yourself write access to it, or use another "
                             "--index"], args
    finally:
        writable_again(env / "default")
    assert tree(env / "default") == before
    assert sorted(p.name for p in env.iterdir()) == ["default"]
