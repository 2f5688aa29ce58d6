"""One CJK definition: chunking, keywords, decoding and retrieval classify alike."""

from __future__ import annotations

import re

from ragkit import retrieval, scripts
from ragkit.chunking import units
from ragkit.loading import decoding
from ragkit.store import keywords

# The three definitions the modules held before they shared ragkit.scripts.
OLD_RANGES = (
    "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f",  # chunking units
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af",  # keywords
    "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef",  # decoding
)


def old_code_points() -> list[str]:
    """Every code point any old definition called CJK, with its neighbours on each side."""
    points: set[int] = set()
    for body in OLD_RANGES:
        for lo, hi in re.findall(r"(.)-(.)", body):
            points.update(range(ord(lo) - 1, ord(hi) + 2))
    return [chr(p) for p in sorted(points)]


def test_the_users_share_one_definition() -> None:
    assert units._CJK_CHAR is scripts.CJK_CHAR
    assert keywords._IS_CJK is scripts.CJK_CHAR
    assert retrieval._is_cjk_char is scripts.is_cjk
    assert decoding._CHINESE is scripts.CJK_TEXT_CHAR


def test_every_old_code_point_is_classified_alike_by_every_user() -> None:
    for ch in old_code_points():
        letter = scripts.is_cjk(ch)
        assert bool(units._CJK_CHAR.match(ch)) == letter, hex(ord(ch))
        assert bool(keywords._IS_CJK.match(ch)) == letter, hex(ord(ch))
        assert retrieval._is_cjk_char(ch) == letter, hex(ord(ch))
        # Decoding counts CJK punctuation too, but never misses a letter.
        assert not letter or decoding._CHINESE.match(ch), hex(ord(ch))


def test_keywords_bigram_the_scripts_only_chunking_knew_before() -> None:
    # CJK extension B was a letter to chunking only: keywords took a run of it for one word.
    terms = keywords.keyword_terms("\U00020000\U00020001\U00020002")
    assert terms == ["\U00020000\U00020001", "\U00020001\U00020002"]


def test_an_english_only_embedder_gives_cjk_questions_less_weight_unless_overridden() -> None:
    weight, question = retrieval.dense_weight, "熊猫吃什么？"
    assert weight(question, "all-minilm") == retrieval.CJK_DENSE_SHARE
    assert weight(question, "all-minilm", english_only=False) == retrieval.DENSE_SHARE
    assert weight(question, "bge-m3", english_only=True) == retrieval.CJK_DENSE_SHARE
