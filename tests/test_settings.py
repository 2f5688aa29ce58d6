"""Settings come from the environment in one place; model facts from one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit import answering, models
from ragkit.errors import UsageError
from ragkit.settings import Settings


def test_an_empty_environment_gives_the_defaults() -> None:
    settings = Settings.from_env({"HOME": "/nowhere"})
    assert settings.home is None and settings.backend == "auto"  # ragkit.home's rule decides
    assert settings.chat_model == models.DEFAULT_CHAT_MODEL
    assert (settings.min_score, settings.max_file_mb, settings.parallel) == (None, 32, 2)
    assert settings.threads is None and settings.english_only is None
    assert not settings.debug and not settings.dumb_terminal


def test_every_variable_lands_in_its_field() -> None:
    settings = Settings.from_env({
        "RAGKIT_HOME": "/ix", "RAGKIT_CACHE": "/cache", "RAGKIT_BACKEND": "Embedded",
        "OLLAMA_HOST": "h:1", "RAGKIT_CHAT_MODEL": "qwen3:4b", "RAGKIT_MIN_SCORE": "0.4",
        "RAGKIT_MAX_FILE_MB": "0.5", "OLLAMA_NUM_PARALLEL": "4", "RAGKIT_THREADS": "3",
        "RAGKIT_EMBED_SCRIPTS": "all", "RAGKIT_DEBUG": "1", "TERM": "dumb"})
    assert settings == Settings(
        home=Path("/ix"), cache_dir=Path("/cache"), backend="embedded", ollama_host="h:1",
        chat_model="qwen3:4b", min_score=0.4, max_file_mb=0.5, parallel=5, threads=3,
        english_only=False, debug=True, dumb_terminal=True)
    assert Settings.from_env({"XDG_CACHE_HOME": "/xdg"}).cache_dir == Path("/xdg/ragkit")
    assert Settings.from_env({"RAGKIT_PARALLEL": "7", "OLLAMA_NUM_PARALLEL": "4"}).parallel == 7


@pytest.mark.parametrize("name,value,message", [
    ("RAGKIT_MIN_SCORE", "high", "RAGKIT_MIN_SCORE must be a number"),
    ("RAGKIT_MAX_FILE_MB", "nan", "RAGKIT_MAX_FILE_MB='nan' is not a size"),
    ("RAGKIT_EMBED_SCRIPTS", "greek", "RAGKIT_EMBED_SCRIPTS='greek' is not a script set"),
])
def test_a_value_that_makes_no_sense_is_a_usage_error(name: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Settings.from_env({name: value})


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().home = Path("elsewhere")  # type: ignore[misc]


def test_the_model_table_drives_options_thresholds_and_prefixes() -> None:
    chat = models.DEFAULT_CHAT_MODEL
    assert answering.options_for(chat)["num_predict"] == models.chat_options(chat)["num_predict"]
    assert answering.options_for(chat, {"num_ctx": 10**6})["num_ctx"] == \
        models.trained_context(chat)
    assert answering.relevance_threshold(models.DEFAULT_EMBED_MODEL) == \
        models.relevance_threshold("all-minilm:latest") == 0.493
    assert models.embedding_prefixes("nomic-embed-text-v2-moe")[0] == "search_query: "
    # A family gives its prefixes, not its other facts: v2 is multilingual.
    assert models.english_only("nomic-embed-text") and not models.english_only(
        "nomic-embed-text-v2-moe")
    models.chat_options(chat)["stop"].append("x")  # a fresh copy: the table is untouched
    assert "x" not in models.chat_options(chat)["stop"]


def test_the_index_takes_its_file_cap_and_home_from_the_settings_it_is_given(
    tmp_path: Path, fake_backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragkit import Index

    monkeypatch.setenv("RAGKIT_MAX_FILE_MB", "100")  # the given settings win over it
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "big.html").write_text("<p>" + "word " * 300_000 + "</p>")  # 1.5 MB
    (docs / "small.md").write_text("Pandas eat bamboo.")
    settings = Settings(home=tmp_path / "elsewhere", max_file_mb=1)
    with Index.open("mine", backend=fake_backend, create=True, settings=settings) as index:
        report = index.ingest(docs)
    assert index.path == tmp_path / "elsewhere" / "mine"
    assert [Path(p).name for p in report.added] == ["small.md"]
    assert "file too large" in str(report.failed + report.skipped)


def test_the_backend_and_engine_threads_come_from_the_settings_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragkit import Index
    from ragkit.backends.chooser import BackendChooser
    from ragkit.backends.embedded import EmbeddedBackend

    monkeypatch.setenv("RAGKIT_THREADS", "3")
    monkeypatch.setenv("RAGKIT_BACKEND", "ollama")
    # Below the facade, the library takes values as arguments and defaults to ragkit's own.
    assert EmbeddedBackend().n_threads is None
    assert BackendChooser().choice == "auto" and BackendChooser().embedded().n_threads is None
    assert BackendChooser("embedded", threads=2).embedded().n_threads == 2
    # The Index facade fills what its caller leaves out: from the settings given...
    given = Settings(home=tmp_path, backend="embedded", threads=1)
    with Index.open("x", create=True, settings=given) as index:
        chooser = index._backends
    assert (chooser.choice, chooser.embedded().n_threads) == ("embedded", 1)
    # ... else from the environment, as the CLI's Settings.from_env() does.
    with Index.open(tmp_path / "y", create=True) as index:
        chooser = index._backends
    assert (chooser.choice, chooser.embedded().n_threads) == ("ollama", 3)


def test_the_engine_cache_comes_from_the_settings(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ragkit import Index
    from ragkit.backends.chooser import BackendChooser
    from ragkit.backends.convert import default_cache_dir

    monkeypatch.setenv("RAGKIT_CACHE", str(tmp_path / "from-env"))
    assert default_cache_dir() == Settings().cache_dir  # the library alone: ragkit's default
    assert BackendChooser().embedded().cache_dir is None
    given = Settings(home=tmp_path, backend="embedded", cache_dir=tmp_path / "given")
    with Index.open("x", create=True, settings=given) as index:
        assert index._backends.embedded().cache_dir == tmp_path / "given"
    with Index.open(tmp_path / "y", create=True) as index:  # the facade's fallback
        assert index._backends.embedded().cache_dir == tmp_path / "from-env"
