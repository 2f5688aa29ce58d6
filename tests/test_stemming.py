"""ragkit's Porter stemmer against SQLite FTS5's own ``porter`` tokenizer, word for word.

The Milvus store indexes :func:`~ragkit.store.stemming.stem_terms` of the
keyword terms where the local store lets FTS5 stem them; both stores rank
alike only if the two agree.  So each word is put through a real FTS5 table
(the local store's tokenizer) and its token compared with ours.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterable

import pytest
from conftest import ROOT, SHARED

from ragkit.store.keywords import keyword_terms
from ragkit.store.stemming import MAX_BYTES, stem_terms


def fts5_tokens(words: Iterable[str]) -> list[list[str]]:
    """The tokens FTS5 indexes for each of ``words`` (broken UTF-8 escaped, as ours)."""
    words = list(words)
    db = sqlite3.connect(":memory:")
    db.text_factory = lambda raw: raw.decode("utf-8", "backslashreplace")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(w, "
               "tokenize = 'porter unicode61 remove_diacritics 2')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    db.executemany("INSERT INTO t(rowid, w) VALUES (?, ?)", enumerate(words))
    tokens: list[list[str]] = [[] for _ in words]
    for term, row in db.execute("SELECT term, doc FROM v ORDER BY doc, offset"):
        tokens[row].append(term)
    db.close()
    return tokens


def disagreements(words: Iterable[str]) -> list[tuple[str, list[str], list[str]]]:
    """(word, FTS5's tokens, ours) for every word where the two differ."""
    words = sorted(set(words))
    return [(w, theirs, stem_terms([w]))
            for w, theirs in zip(words, fts5_tokens(words), strict=True)
            if theirs != stem_terms([w])]


@pytest.fixture(scope="module")
def vocabulary() -> set[str]:
    """Every distinct keyword term of SciFact's abstracts and of ragkit's corpora/."""
    corpus = SHARED / "eval" / "scifact" / "corpus.jsonl"
    assert corpus.is_file(), f"{corpus} is missing: set RAGKIT_SHARED to the shared folder"
    words: set[str] = set()
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            words.update(keyword_terms(f"{doc.get('title', '')} {doc['text']}"))
    for path in (ROOT / "corpora").rglob("*"):
        if path.is_file():
            words.update(keyword_terms(path.read_text(encoding="utf-8", errors="replace")))
    return words


def test_every_word_of_scifact_and_the_corpora_stems_as_fts5_does(vocabulary):
    assert len(vocabulary) > 30_000
    assert sum(not w.isascii() for w in vocabulary) > 100  # accents, µ, Greek letters
    assert disagreements(vocabulary)[:20] == []


@pytest.mark.parametrize(("word", "expected"), [
    ("caresses", "caress"), ("ponies", "poni"), ("cats", "cat"), ("agreed", "agre"),
    ("feed", "feed"), ("plastered", "plaster"), ("motoring", "motor"), ("sing", "sing"),
    ("hopping", "hop"), ("falling", "fall"), ("filing", "file"), ("happy", "happi"),
    ("relational", "relat"), ("conditional", "condit"), ("generalization", "gener"),
    ("electrical", "electr"), ("adjustment", "adjust"), ("controlling", "control"),
    ("studies", "studi"), ("study", "studi"), ("running", "run"), ("runs", "run"),
])
def test_textbook_examples(word, expected):
    assert stem_terms([word]) == [expected]
    assert fts5_tokens([word]) == [[expected]]  # the examples are right for FTS5 too


def test_every_suffix_combination_and_edge_stems_as_fts5_does():
    """Words made of the rules' suffixes, digits and non-ASCII letters, and the length limits."""
    suffixes = [
        "ational", "tional", "enci", "anci", "izer", "logi", "bli", "alli", "entli", "eli",
        "ousli", "ization", "ation", "ator", "alism", "iveness", "fulness", "ousness", "aliti",
        "iviti", "biliti", "icate", "ative", "alize", "iciti", "ical", "ful", "ness", "al",
        "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "sion",
        "tion", "ou", "ism", "ate", "iti", "ous", "ive", "ize", "eed", "ed", "ing", "ies", "sses",
        "ss", "s", "e", "y", "at", "bl", "iz", "ll"]
    parts = [*suffixes, *"abcdeilmnorstuvwxyz19", "é", "₂", "ß", "µ", "ø", "α"]
    rng = random.Random(7)
    words = {"".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(30_000)}
    for n in range(MAX_BYTES - 5, MAX_BYTES + 2):  # around FTS5's 64-byte limit
        words |= {"x" * (n - 3) + "ing", "é" * ((n - 3) // 2) + "ing"}
    words |= {"ies", "sses", "ating", "aed", "yying", "syzygy", "a₂ed", "1990s", "3d"}
    assert disagreements(words)[:20] == []


def test_accents_and_letter_variants_fold_as_fts5_does():
    """Each letter FTS5 keeps in a word, between two q's: accents gone, variants folded."""
    words = {}
    for code in range(0xC0, 0x30000):
        char = chr(code).lower()
        if not 0xD800 <= code < 0xE000 and keyword_terms(f"q{char}q") == [f"q{char}q"]:
            words[f"q{char}q"] = code
    assert len(words) > 20_000
    split = [w for w, tokens in zip(words, fts5_tokens(words), strict=True) if len(tokens) != 1]
    # Letters of newer Unicode versions than FTS5's tables (New Tai Lue and Vedic signs):
    # FTS5 splits words there, a tokenizer matter that no folding could match.
    assert len(split) < 40
    assert disagreements(w for w in words if w not in split)[:20] == []
