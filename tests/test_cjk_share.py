"""How much of a hybrid score the embedding side gets, by model and by the question's script."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit import models, retrieval
from ragkit.settings import Settings

CJK_QUESTION = "熊猫吃什么？"


@pytest.mark.parametrize("model", ["bge-m3", "bge-m3:latest",
                                   "jeffh/intfloat-multilingual-e5-small:f16"])
def test_a_multilingual_embedder_gets_the_full_share_of_cjk_questions(model) -> None:
    assert not models.english_only(model)
    assert retrieval.dense_weight(CJK_QUESTION, model) == retrieval.DENSE_SHARE


def test_the_model_table_decides_with_its_prefixes() -> None:
    # bge-m3 takes no instruction prefixes; nomic-embed-text (v1.5) takes its own and,
    # per the table, reads English only, so CJK questions lean on keywords with it.
    assert models.embedding_prefixes("bge-m3") == ("", "")
    assert models.embedding_prefixes("nomic-embed-text") == ("search_query: ", "search_document: ")
    assert models.english_only("nomic-embed-text")
    assert retrieval.dense_weight(CJK_QUESTION, "nomic-embed-text") == retrieval.CJK_DENSE_SHARE
    assert retrieval.dense_weight("What do pandas eat?", "nomic-embed-text") == \
        retrieval.DENSE_SHARE
    assert retrieval.dense_weight(CJK_QUESTION, "nomic-embed-text", english_only=False) == \
        retrieval.DENSE_SHARE


def _dense_share_of_a_search(tmp_path: Path, fake_backend, monkeypatch, model: str,
                             settings: Settings) -> float:
    """The ``dense`` share an Index passes to retrieval for a CJK question."""
    import ragkit.index
    from ragkit import Index

    seen: list[float] = []
    real = ragkit.index.retrieve

    def spy(*args, **kwargs):
        seen.append(kwargs["dense"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ragkit.index, "retrieve", spy)
    fake_backend.models.add(model)  # any name embeds alike in the fake
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "panda.md").write_text("大熊猫吃竹子，也吃水果。", encoding="utf-8")
    with Index.open(tmp_path / model, backend=fake_backend, create=True, embed_model=model,
                    settings=settings) as index:
        index.ingest(docs)
        assert index.search(CJK_QUESTION, 1)
    return seen[-1]


@pytest.mark.parametrize(("model", "scripts", "share"), [
    ("bge-m3", None, retrieval.DENSE_SHARE),
    ("nomic-embed-text", None, retrieval.CJK_DENSE_SHARE),
    ("all-minilm", None, retrieval.CJK_DENSE_SHARE),
    ("all-minilm", False, retrieval.DENSE_SHARE),  # RAGKIT_EMBED_SCRIPTS=all
    ("bge-m3", True, retrieval.CJK_DENSE_SHARE),  # RAGKIT_EMBED_SCRIPTS=latin
])
def test_the_index_searches_with_the_share_of_its_model_or_the_override(
        tmp_path, fake_backend, monkeypatch, model, scripts, share) -> None:
    settings = Settings(home=tmp_path, english_only=scripts)
    assert _dense_share_of_a_search(tmp_path, fake_backend, monkeypatch, model, settings) == share


def test_the_override_is_read_from_the_environment() -> None:
    assert Settings.from_env({"RAGKIT_EMBED_SCRIPTS": "all"}).english_only is False
    assert Settings.from_env({"RAGKIT_EMBED_SCRIPTS": "latin"}).english_only is True


def test_extractive_answers_follow_the_override_too(tmp_path, fake_backend, monkeypatch) -> None:
    # The excerpts of an extractive answer weigh the question's embedding like search does:
    # with RAGKIT_EMBED_SCRIPTS=all, all-minilm's share stays full for a CJK question.
    import ragkit.index
    from ragkit import Index

    shares: list[float] = []
    real = ragkit.index.extract

    def spy(*args, **kwargs):
        shares.append(kwargs["dense"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ragkit.index, "extract", spy)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "panda.md").write_text("大熊猫吃竹子，也吃水果。", encoding="utf-8")
    for scripts, share in ((False, retrieval.DENSE_SHARE), (None, retrieval.EXCERPT_CJK_SHARE)):
        settings = Settings(home=tmp_path, english_only=scripts, min_score=0.0)
        with Index.open("zh", backend=fake_backend, create=True, settings=settings) as index:
            index.ingest(docs)
            index.ask(CJK_QUESTION, answer="extractive")
        assert shares[-1] == share
