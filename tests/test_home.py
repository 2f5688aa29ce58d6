"""Where named indexes live (ragkit.home): the rule, and the message for a missing index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragkit.cli import cli
from ragkit.home import index_home, locate_home, user_home

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No RAGKIT_HOME, a private user data folder, and the current folder outside any checkout."""
    monkeypatch.delenv("RAGKIT_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def _fake_index(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"embed_model": "all-minilm"}))
    return folder


def test_outside_a_checkout_the_home_is_the_users_data_folder(fresh):
    assert index_home() == fresh / "data" / "ragkit" / "indexes"
    assert locate_home().why == "the default outside a ragkit checkout"


def test_xdg_data_home_must_be_absolute(fresh, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")
    assert user_home() == Path.home() / ".local" / "share" / "ragkit" / "indexes"


def test_ragkit_home_wins_everywhere(fresh, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", "~/mine")
    assert index_home() == Path("~/mine").expanduser()
    monkeypatch.chdir(ROOT)
    assert index_home() == Path("~/mine").expanduser()


@pytest.mark.parametrize("where", [".", "ragkit", "corpora/guide"])
def test_inside_a_ragkit_checkout_the_home_is_its_indexes_folder(fresh, monkeypatch, where):
    monkeypatch.chdir(ROOT / where)
    assert locate_home().path == ROOT / "indexes"
    # At the checkout's root, its indexes/ is also ./indexes: once it holds an index (after
    # `make demo`, say), that rule names it first.
    expected = {"inside the ragkit checkout"}
    if where == ".":
        expected.add("./indexes holds indexes")
    assert locate_home().why in expected


def test_a_local_indexes_folder_is_used_only_when_it_holds_indexes(fresh):
    (fresh / "work" / "indexes").mkdir()  # an unrelated empty folder of that name
    assert index_home() == fresh / "data" / "ragkit" / "indexes"
    _fake_index(fresh / "work" / "indexes" / "notes")
    assert index_home() == fresh / "work" / "indexes"


def test_a_project_that_is_not_ragkit_is_not_a_checkout(fresh):
    (fresh / "work" / "pyproject.toml").write_text('[project]\nname = "ragkitten"\n')
    (fresh / "work" / "ragkit").mkdir()
    assert index_home() == fresh / "data" / "ragkit" / "indexes"


def test_an_index_built_in_one_folder_is_found_from_another(fresh, monkeypatch, docs, ollama):
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    monkeypatch.setenv("RAGKIT_BACKEND", "ollama")
    monkeypatch.setenv("RAGKIT_MIN_SCORE", "0")
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(docs), "--index", "mine"]).exit_code == 0
    assert (fresh / "data" / "ragkit" / "indexes" / "mine" / "manifest.json").is_file()
    assert not (fresh / "work" / "indexes").exists()  # no stray ./indexes
    elsewhere = fresh / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(cli, ["search", "backups", "--index", "mine"])
    assert result.exit_code == 0 and "backups.md" in result.stdout


def test_a_missing_index_says_where_it_looked_and_how_to_point_elsewhere(fresh):
    result = CliRunner().invoke(cli, ["search", "x", "--index", "mine"])
    assert result.exit_code == 4
    home = fresh / "data" / "ragkit" / "indexes"
    assert result.stderr == (
        f"error: no index 'mine' in {home} (the default outside a ragkit checkout) — if it is "
        "elsewhere, pass --index PATH/TO/mine or set RAGKIT_HOME to the folder holding it; "
        "else build it with `ragkit ingest PATH --index mine`\n")


def test_a_missing_index_that_exists_in_another_home_is_pointed_at(fresh, monkeypatch):
    # Built inside a project folder's ./indexes, then asked for from elsewhere.
    project = fresh / "project"
    _fake_index(project / "indexes" / "mine")
    result = CliRunner().invoke(cli, ["search", "x", "--index", "mine"])
    assert "there is one" not in result.stderr  # ./indexes of another folder is not known
    monkeypatch.chdir(project)
    _fake_index(fresh / "data" / "ragkit" / "indexes" / "other")
    result = CliRunner().invoke(cli, ["search", "x", "--index", "other"])
    user = fresh / "data" / "ragkit" / "indexes"
    assert result.exit_code == 4
    assert result.stderr == (
        f"error: no index 'other' in {project / 'indexes'} (./indexes holds indexes) — there is "
        f"one at {user / 'other'}: pass --index {user / 'other'}, or set RAGKIT_HOME={user}\n")


def test_a_missing_index_given_by_path_names_its_folder(fresh):
    result = CliRunner().invoke(cli, ["search", "x", "--index", "./nowhere/mine"])
    assert result.exit_code == 4
    assert result.stderr == ("error: no index './nowhere/mine' in nowhere — check the path, "
                             "or build it with `ragkit ingest PATH --index ./nowhere/mine`\n")
