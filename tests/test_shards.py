"""Sharded ingest: ``--shard i/n`` indexes and deletes only shard i's files."""

from __future__ import annotations

import json
import shutil

import pytest

from ragkit.index import Index
from ragkit.ingest.shards import Shard, ShardView, shard_of


@pytest.fixture
def corpus(tmp_path):
    """Fifteen small files in two folders."""
    root = tmp_path / "corpus"
    for n in range(15):
        path = root / ("ops" if n % 2 else "notes") / f"file{n:02d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# File {n}\n\nValve {n} is checked every {n + 3} days by the crew.\n",
                        encoding="utf-8")
    return root


def _files(home, name: str) -> dict[str, tuple[str, int, int]]:
    with Index.open(name, home=home) as index:
        store = index._store
        assert store is not None
        return {key: (r.sha256, r.size, r.chunks) for key, r in store.files().items()}


def _owner(corpus, key: str, n: int) -> int:
    return shard_of(key[len(str(corpus.resolve())) + 1 :], n)


def _hits(run, name: str) -> list[tuple[float, str]]:
    out = run("search", "which valve is checked every 9 days", "--index", name, "-k", "15",
              "--json").stdout
    # Sorted: equal scores may come in another order (chunks were written in another order).
    return sorted((round(h["score"], 6), h["path"]) for h in json.loads(out)["hits"])


def test_three_shards_in_turn_equal_a_plain_ingest(run, env, corpus):
    assert run("ingest", str(corpus), "--index", "plain").exit_code == 0
    added = []
    for i in (1, 2, 3):
        result = run("ingest", str(corpus), "--index", "sharded", "--shard", f"{i}/3")
        assert result.exit_code == 0, result.output
        assert " 0 removed" in result.output  # the shards before it are left alone
        added.append(int(result.stdout.split(": ", 1)[1].split(" added")[0]))
    assert sum(added) == 15 and all(added)
    assert _files(env, "sharded") == _files(env, "plain")
    assert _hits(run, "sharded") == _hits(run, "plain")


def test_a_shard_deletes_only_its_own_missing_files(run, env, corpus):
    for i in (1, 2, 3):
        assert run("ingest", str(corpus), "--shard", f"{i}/3").exit_code == 0
    keys = sorted(_files(env, "default"))
    mine = next(k for k in keys if _owner(corpus, k, 3) == 1)
    theirs = next(k for k in keys if _owner(corpus, k, 3) == 2)
    for key in (mine, theirs):
        (corpus / key[len(str(corpus.resolve())) + 1 :]).unlink()
    result = run("ingest", str(corpus), "--shard", "1/3")
    assert result.exit_code == 0 and " 1 removed" in result.output
    left = _files(env, "default")
    assert mine not in left and theirs in left  # not shard 1's to delete
    assert len(left) == 14
    result = run("ingest", str(corpus), "--shard", "2/3")
    assert " 1 removed" in result.output and theirs not in _files(env, "default")


def test_shards_agree_wherever_the_corpus_is_mounted(tmp_path, corpus):
    elsewhere = shutil.copytree(corpus, tmp_path / "mnt" / "other")
    here, there = ShardView(Shard(1, 4), [corpus]), ShardView(Shard(1, 4), [elsewhere])
    names = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.md"))
    assert [here.owns(str(corpus.resolve() / n)) for n in names] == [
        there.owns(str(elsewhere.resolve() / n)) for n in names]
    assert here.relative(str(corpus.resolve() / "ops" / "file01.md")) == "ops/file01.md"
    assert here.owns("/somewhere/else.md")  # outside the roots: not a shard's business
    # NFC and NFD spellings of a name are one file name: the same shard.
    assert shard_of("caf\u00e9.md", 7) == shard_of("cafe\u0301.md", 7)


@pytest.mark.parametrize("value", ["0/3", "4/3", "a/b", "3", "1/0", "-1/3", "", "2/3/4"])
def test_invalid_shard_is_one_line_and_exit_2(run, corpus, value):
    result = run("ingest", str(corpus), "--shard", value)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --shard {value!r} is not a shard")


def test_rebuild_of_one_shard_is_refused(run, corpus):
    assert run("ingest", str(corpus), "--shard", "1/2").exit_code == 0
    result = run("ingest", str(corpus), "--shard", "2/2", "--rebuild")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --rebuild replaces")
