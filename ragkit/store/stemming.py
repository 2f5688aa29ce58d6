"""The Porter (1980) stemmer, as SQLite FTS5's ``porter`` tokenizer applies it.

The local store's FTS5 table stems English words itself (``porter unicode61
remove_diacritics 2``), so "studies" finds "study".  Milvus has no such step
ragkit can rely on: Milvus Lite 3.2.2 silently ignores a ``stemmer`` filter in
the analyzer's parameters.  So ragkit stems the Milvus terms itself, with
:func:`stem_terms`, exactly as FTS5 would: the same algorithm with the same
details, so that both stores index and query the same terms and rank alike.

FTS5 stems what ``unicode61`` hands it: tokens lowercased and, with
``remove_diacritics 2``, stripped of accents.  :func:`fold` does the
stripping; the stemmer then follows FTS5 to the byte:

- tokens shorter than 3 or longer than 64 bytes (UTF-8) are left as they are;
- the rules look at bytes: only ``a e i o u`` (and ``y`` after a consonant)
  are vowels, so digits and non-ASCII letters count as consonants, and
  "1990s" becomes "1990" (and "a₂ed" ends in half a character, kept
  escaped, "a\\xe2\\x82");
- a suffix is only removed when something is left before it (so "ating"
  stays "at"), and only the longest suffix of a step that ends the word is
  tried: if its condition fails, the step leaves the word alone;
- the revised rules of Porter's own implementation: step 2 turns "bli" into
  "ble" and "logi" into "log".

tests/test_stemming.py compares :func:`stem_terms` with FTS5's own tokens on
every distinct word of the SciFact corpus and of ``corpora/``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache

__all__ = ["fold", "stem", "stem_terms"]

#: FTS5 leaves tokens of other lengths (in UTF-8 bytes) unstemmed.
MIN_BYTES, MAX_BYTES = 3, 64
_VOWELS = frozenset(b"aeiou")


def _shape(word: bytes) -> str:
    """``c``/``v`` per byte: ``y`` is a vowel after a consonant, any other byte a consonant."""
    shape: list[str] = []
    for i, byte in enumerate(word):
        vowel = byte in _VOWELS or (byte == ord("y") and i > 0 and shape[i - 1] == "c")
        shape.append("v" if vowel else "c")
    return "".join(shape)


def _measure(word: bytes) -> int:
    """Porter's *m*: how many vowel-consonant sequences ``word`` holds."""
    return _shape(word).count("vc")


def _has_vowel(word: bytes) -> bool:
    return "v" in _shape(word)


def _ends_cvc(word: bytes) -> bool:
    """Porter's ``*o``: consonant, vowel, consonant at the end, the last not w, x or y."""
    return _shape(word).endswith("cvc") and word[-1:] not in (b"w", b"x", b"y")


def _m_above_0(word: bytes) -> bool:
    return _measure(word) > 0


def _m_above_1(word: bytes) -> bool:
    return _measure(word) > 1


def _m_above_1_after_s_or_t(word: bytes) -> bool:
    return word[-1:] in (b"s", b"t") and _measure(word) > 1


_Rule = tuple[bytes, bytes, Callable[[bytes], bool]]


def _rules(*groups: tuple[Callable[[bytes], bool], str]) -> list[_Rule]:
    """Rules from (condition, ``"suffix:replacement ..."``) groups, longest suffix first."""
    rules = [(suffix.encode(), replacement.encode(), condition)
             for condition, pairs in groups
             for suffix, replacement in (pair.split(":") for pair in pairs.split())]
    return sorted(rules, key=lambda rule: -len(rule[0]))


_STEP2 = _rules((_m_above_0, "ational:ate tional:tion enci:ence anci:ance izer:ize logi:log "
                 "bli:ble alli:al entli:ent eli:e ousli:ous ization:ize ation:ate ator:ate "
                 "alism:al iveness:ive fulness:ful ousness:ous aliti:al iviti:ive biliti:ble"))
_STEP3 = _rules((_m_above_0, "icate:ic ative: alize:al iciti:ic ical:ic ful: ness:"))
_STEP4 = _rules((_m_above_1, "al: ance: ence: er: ic: able: ible: ant: ement: ment: ent: ou: "
                 "ism: ate: iti: ous: ive: ize:"), (_m_above_1_after_s_or_t, "ion:"))


def _apply(word: bytes, rules: list[_Rule]) -> bytes:
    """``word`` with the longest of ``rules``' suffixes that it ends with replaced, if allowed."""
    for suffix, replacement, condition in rules:
        if len(word) > len(suffix) and word.endswith(suffix):
            stem = word[: -len(suffix)]
            return stem + replacement if condition(stem) else word
    return word


def _step1a(word: bytes) -> bytes:
    """Plurals: sses -> ss, ies -> i, s -> (but ss stays)."""
    if not word.endswith(b"s"):
        return word
    if (len(word) > 4 and word.endswith(b"sses")) or (len(word) > 3 and word.endswith(b"ies")):
        return word[:-2]
    return word if word.endswith(b"ss") else word[:-1]


def _step1b(word: bytes) -> bytes:
    """Past tenses and gerunds: eed -> ee; ed, ing removed after a vowel, then tidied."""
    if len(word) > 3 and word.endswith(b"eed"):
        return word[:-1] if _m_above_0(word[:-3]) else word
    for suffix in (b"ed", b"ing"):
        if len(word) > len(suffix) and word.endswith(suffix):
            stem = word[: -len(suffix)]
            return _tidy(stem) if _has_vowel(stem) else word
    return word


def _tidy(stem: bytes) -> bytes:
    """After ed/ing: at -> ate, bl -> ble, iz -> ize; undouble; or add e to a short cvc."""
    if len(stem) > 2 and stem.endswith((b"at", b"bl", b"iz")):
        return stem + b"e"
    last = stem[-1]
    if last not in _VOWELS and last not in b"lsz" and len(stem) > 1 and stem[-2] == last:
        return stem[:-1]
    if _measure(stem) == 1 and _ends_cvc(stem):
        return stem + b"e"
    return stem


def _step1c(word: bytes) -> bytes:
    """y -> i when the rest holds a vowel."""
    return word[:-1] + b"i" if word.endswith(b"y") and _has_vowel(word[:-1]) else word


def _step5(word: bytes) -> bytes:
    """A final e removed on long stems; ll -> l on long stems."""
    if word.endswith(b"e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _ends_cvc(stem)):
            word = stem
    if word.endswith(b"ll") and _m_above_1(word[:-1]):
        word = word[:-1]
    return word


def _stem_bytes(word: bytes) -> bytes:
    word = _step1c(_step1b(_step1a(word)))
    for rules in (_STEP2, _STEP3, _STEP4):
        word = _apply(word, rules)
    return _step5(word)


@lru_cache(maxsize=1 << 16)  # a corpus's common words; ~15 MB when full
def stem(word: str) -> str:
    """The Porter stem of a lowercase ``word``, as FTS5's ``porter`` tokenizer makes it.

    >>> [stem(w) for w in ("studies", "study", "running", "runs", "relational", "1990s")]
    ['studi', 'studi', 'run', 'run', 'relat', '1990']
    >>> [stem(w) for w in ("is", "generalizations", "rating", "ating", "熊猫", "résumés")]
    ['is', 'gener', 'rate', 'at', '熊猫', 'résumé']
    """
    raw = word.encode("utf-8")
    if not MIN_BYTES <= len(raw) <= MAX_BYTES:
        return word
    # Undoubling the last "consonant" may split a character ("a₂ed": ₂ is E2 82 82), and
    # FTS5 then indexes broken UTF-8; its escaped form is as distinct (terms hold no "\").
    return _stem_bytes(raw).decode("utf-8", "backslashreplace")


@lru_cache(maxsize=1 << 14)
def fold(term: str) -> str:
    """Lowercase ``term`` as FTS5's ``unicode61 remove_diacritics 2`` folds it.

    >>> fold("résumé"), fold("naïve"), fold("µm"), fold("ø"), fold("がっこう")
    ('resume', 'naive', 'μm', 'ø', 'がっこう')
    """
    return "".join(_fold_char(c) for c in term)


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """``char`` folded as FTS5 does beyond ``str.lower``, and a Latin letter unaccented."""
    char = _CASE_FOLDS.get(char, char)
    code = ord(char)
    if code < 0xC0 or code in _KEPT or not (code <= 0x24F or 0x1E00 <= code <= 0x1EFF):
        return char
    base = unicodedata.normalize("NFD", char)[0]
    return base if base.isascii() else char


#: What FTS5's case folding changes in lowercase text: variant forms of letters.
_CASE_FOLDS = dict(zip("µſẛςϐϑϕϖϰϱϵ\u1fbe", "μssσβθφπκρει", strict=True))
#: Latin letters FTS5 leaves accented although Unicode gives them an ASCII base (ǡ, Ǡ).
_KEPT = frozenset({0x1E0, 0x1E1})


def stem_terms(terms: Iterable[str]) -> list[str]:
    """Keyword terms (:func:`~ragkit.store.keywords.keyword_terms`) as FTS5 indexes them.

    >>> stem_terms(["pandas", "eating", "竹子", "café", "3d"])
    ['panda', 'eat', '竹子', 'cafe', '3d']
    """
    return [stem(term if term.isascii() else fold(term)) for term in terms]
