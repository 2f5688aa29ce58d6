"""The grounding check: is each sentence of a generated answer found in the passages?

A model's answer is cut into units (:func:`ragkit.sentences.text_units`), and
each is compared with the units of the passages the model was given:

* **meaning:** the best cosine similarity between the sentence's embedding and
  a passage unit's (one batched embedding call for the whole answer);
* **words:** the share of the sentence's content words that the best passage
  holds.  Words the question already has are left out when the sentence has
  others: a sentence that repeats the question and adds a name must have
  that name in a passage ("The upstream contact for bash is Michael Wood" is
  not supported by ``Upstream-Contact: chet@po.cwru.edu``).

A sentence is supported when ``cosine + WORD_WEIGHT x word share`` reaches
:data:`THRESHOLD`, and every number it writes is in the question or a passage
(a changed number is the one error the cosine cannot see).  Both constants
are calibrated on XQuAD's gold answers by ``benchmarks/calibrate_grounding.py``
(see the README).  ragkit's own "not in the documents" sentence is not a
claim and is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .extractive import content_terms
from .prompting import NOT_FOUND
from .retrieval import Hit
from .sentences import text_units

__all__ = [
    "THRESHOLD",
    "WORD_WEIGHT",
    "PlaceholderFilter",
    "SentenceCheck",
    "Support",
    "attribute",
    "check_answer",
    "cited_numbers",
    "is_not_found",
    "numbers",
    "strip_placeholders",
    "support",
]

#: Weight of the word share next to the cosine, and what ``cosine + WORD_WEIGHT x word
#: share`` must reach for a supported sentence: halfway between catching 95% of made-up
#: answers (0.85) and keeping 95% of gold ones (1.52) on XQuAD-en, for all-minilm
#: (benchmarks/calibrate_grounding.py; 300 questions, seed 0).
WORD_WEIGHT = 1.0
THRESHOLD = 1.18
#: Words a model uses about the passages rather than from them (stemmed, see content_terms).
META_WORDS = frozenset({"accord", "answer", "cit", "cite", "context", "document", "mention",
                        "passage", "provid", "state", "text"})
#: Without embeddings, the word share a supported sentence needs (calibrated the same way:
#: halfway between 0.25 and 1.0).
WORDS_ONLY_THRESHOLD = 0.62
#: Passage units compared with the answer, the best by shared words (bounds the cost).
MAX_PASSAGE_UNITS = 48

EmbedFn = Callable[[Sequence[str]], np.ndarray]

_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def cited_numbers(text: str, available: int) -> list[int]:
    """Passage numbers cited as ``[n]`` or ``[n, m]`` in ``text``, in order of first use.

    >>> cited_numbers("Yes [2]. Also [1, 2] and [9].", 3)
    [2, 1]
    """
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            n = int(part)
            if 1 <= n <= available and n not in seen:
                seen.append(n)
    return seen


@dataclass(frozen=True)
class SentenceCheck:
    """One sentence of a generated answer and whether the passages support it."""

    text: str
    #: Offsets in the answer text.
    start: int
    end: int
    supported: bool
    #: The passage that supports it best (1-based), or None.
    passage: int | None
    score: float
    #: ragkit's "not in the documents" sentence: not a claim, so not checked.
    not_found: bool = False
    #: The two parts of the score, and the numbers no passage has (see :class:`Support`).
    cosine: float | None = None
    words: float = 0.0
    new_numbers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as ``ask --json`` prints each sentence."""
        return {"text": self.text, "supported": self.supported, "passage": self.passage,
                "score": round(self.score, 4), "not_found": self.not_found,
                "cosine": None if self.cosine is None else round(self.cosine, 4),
                "words": round(self.words, 4), "new_numbers": list(self.new_numbers)}


_NOT_FOUND = re.compile(re.escape(NOT_FOUND.rstrip(".")), re.IGNORECASE)


def is_not_found(sentence: str) -> bool:
    """Whether ``sentence`` is ragkit's "the documents do not contain the answer".

    >>> is_not_found("The documents do not contain the answer [1]."), is_not_found("Yes.")
    (True, False)
    """
    return bool(_NOT_FOUND.search(sentence))


@dataclass(frozen=True)
class Support:
    """What the passages offer one sentence: its best cosine and word share, and where."""

    #: Best cosine with a passage unit (None: no embeddings to compare).
    cosine: float | None
    #: Largest share of the sentence's content words in one passage (see the module docstring).
    words: float
    #: The passage holding that share (else the best unit's), 1-based, or None.
    passage: int | None
    #: Numbers in the sentence that neither the question nor any passage has.
    new_numbers: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        """``cosine + WORD_WEIGHT x words`` (the words alone without a cosine)."""
        return (self.cosine or 0.0) + WORD_WEIGHT * self.words

    @property
    def supported(self) -> bool:
        """Whether the score reaches the calibrated threshold, with some words shared.

        A number no passage has is never supported, however close the sentence
        is to one ("The server address is http://10.0.0.7:8080").
        """
        if self.words <= 0 or self.new_numbers:
            return False
        if self.cosine is None:
            return self.words >= WORDS_ONLY_THRESHOLD
        return self.score >= THRESHOLD


def support(question: str, sentences: Sequence[str], hits: Sequence[Hit],
            embed: EmbedFn | None) -> list[Support]:
    """How well the passages ``hits`` support each of ``sentences`` (one embedding call)."""
    asked = content_terms(question)
    passage_terms = [content_terms(h.text) for h in hits]
    known = numbers(question).union(*(numbers(h.text) for h in hits))
    cosines = _best_cosines(list(sentences), hits, embed)
    out = []
    for sentence, (cosine, unit_passage) in zip(sentences, cosines, strict=True):
        share, passage = _word_share(content_terms(sentence), asked, passage_terms)
        new = tuple(sorted(numbers(sentence) - known))
        out.append(Support(cosine, share, passage or unit_passage, new))
    return out


_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def numbers(text: str) -> set[str]:
    """The numbers written in ``text`` (citation marks left out), each as written.

    >>> sorted(numbers("Port 11434 at 127.0.0.1 [2], 02:00, 8,312,790 and v2.0."))
    ['02:00', '11434', '127.0.0.1', '2.0', '8,312,790']
    """
    return set(_NUMBER.findall(_CITATION.sub(" ", text)))


def check_answer(
    question: str, answer: str, hits: Sequence[Hit], embed: EmbedFn | None
) -> list[SentenceCheck]:
    """Check every sentence of ``answer`` against the passages ``hits``.

    ``embed`` embeds a batch of texts; without it only the words are compared
    (a sentence then needs :data:`WORDS_ONLY_THRESHOLD` of them in one passage).
    """
    spans = [(pos + u.start, pos + u.end) for pos, line in _lines(answer)
             for u in text_units(line) if u.kind != "heading"]
    claims = [(a, b) for a, b in spans if not is_not_found(answer[a:b])]
    found = dict(zip(claims, support(question, [answer[a:b] for a, b in claims], hits, embed),
                     strict=True))
    checks = []
    for a, b in spans:
        got = found.get((a, b))
        if got is None:
            checks.append(SentenceCheck(answer[a:b], a, b, False, None, 0.0, not_found=True))
        else:
            checks.append(SentenceCheck(answer[a:b], a, b, got.supported,
                                        got.passage if got.supported else None, got.score,
                                        cosine=got.cosine, words=got.words,
                                        new_numbers=got.new_numbers))
    return checks


def _lines(text: str) -> list[tuple[int, str]]:
    """``(offset, line)`` of each line: a model does not wrap its lines, so each stands alone."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        out.append((pos, line))
        pos += len(line)
    return out


def _word_share(terms: set[str], asked: set[str],
                passages: list[set[str]]) -> tuple[float, int | None]:
    """The largest share of ``terms`` (less the question's, if others remain) in one passage."""
    terms = terms - META_WORDS
    new = terms - asked
    wanted = new or terms
    if not wanted or not passages:
        return 0.0, None
    shares = [len(wanted & p) / len(wanted) for p in passages]
    best = max(range(len(shares)), key=shares.__getitem__)
    return shares[best], best + 1 if shares[best] > 0 else None


def _best_cosines(sentences: list[str], hits: Sequence[Hit],
                  embed: EmbedFn | None) -> list[tuple[float | None, int | None]]:
    """For each sentence, its best cosine with a passage unit and that unit's passage."""
    if not sentences:
        return []
    units = [(n, h.text[u.start:u.end]) for n, h in enumerate(hits, 1)
             for u in text_units(h.text) if u.kind != "heading"]
    if embed is None or not units:
        return [(None, None)] * len(sentences)
    wanted = set().union(*(content_terms(s) for s in sentences))
    units = sorted(units, key=lambda u: -len(wanted & content_terms(u[1])))[:MAX_PASSAGE_UNITS]
    vectors = embed([*sentences, *(text for _, text in units)])
    ours, theirs = vectors[: len(sentences)], vectors[len(sentences):]
    sims = ours @ theirs.T
    best = sims.argmax(axis=1)
    return [(float(sims[i, j]), units[j][0]) for i, j in enumerate(best)]


# Where a marker goes: before the sentence's closing marks, never inside a token.
_CLOSING = re.compile(r"[.!?。！？\"')\]}»”’」』）:;]*$")


def attribute(text: str, checks: list[SentenceCheck]) -> tuple[str, list[SentenceCheck], list[int]]:
    """Add ``[n]`` after each supported sentence, n being the passage that supports it.

    For models that do not cite on their own.  Returns the marked text, the
    checks with their offsets in it, and the cited numbers in order of first use.

    >>> c = SentenceCheck("It uses Apache-2.0.", 0, 19, True, 2, 1.5)
    >>> attribute("It uses Apache-2.0. Cats purr.", [c])[0]
    'It uses Apache-2.0 [2]. Cats purr.'
    """
    out, moved, cited, pos, shift = [], [], [], 0, 0
    for check in checks:
        sentence = text[check.start:check.end]
        if check.supported and check.passage:
            cut = _CLOSING.search(sentence).start()  # type: ignore[union-attr]  # always matches
            sentence = f"{sentence[:cut]} [{check.passage}]{sentence[cut:]}"
            if check.passage not in cited:
                cited.append(check.passage)
        out += [text[pos:check.start], sentence]
        moved.append(replace(check, text=sentence, start=check.start + shift,
                             end=check.start + shift + len(sentence)))
        shift += len(sentence) - (check.end - check.start)
        pos = check.end
    out.append(text[pos:])
    return "".join(out), moved, cited


# A placeholder copied from the prompt's "citing [n]": never a passage number.
_PLACEHOLDER = re.compile(r"[^\S\n]?\[[nN]\]")


def strip_placeholders(text: str) -> str:
    """``text`` without literal ``[n]``/``[N]`` placeholders (and the space before them).

    >>> strip_placeholders("The site is openssl.org [n]. See [N] and [2].")
    'The site is openssl.org. See and [2].'
    """
    return _PLACEHOLDER.sub("", text)


class PlaceholderFilter:
    """Removes ``[n]`` placeholders from streamed deltas, even when split across deltas.

    Text that could still become a placeholder (a trailing space, ``[`` or ``[n``)
    is held back until the next delta shows what it is.

    >>> f = PlaceholderFilter()
    >>> [f.feed(d) for d in ["It is", " [", "n]", ". A [", "2]"]] + [f.flush()]
    ['It is', '', '', '. A', ' [2]', '']
    """

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        """The part of ``pending + delta`` that is safe to show now."""
        text = strip_placeholders(self._pending + delta)
        hold = _unsettled_tail(text)
        self._pending = text[len(text) - hold:] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """Whatever was held back, at the end of the stream."""
        rest, self._pending = strip_placeholders(self._pending), ""
        return rest


def _unsettled_tail(text: str) -> int:
    """How many trailing characters of ``text`` may still turn into a placeholder."""
    for tail in ("[n", "[N", "["):
        if text.endswith(tail):
            return len(tail) + (1 if text[: -len(tail)].endswith(" ") else 0)
    return 1 if text.endswith(" ") else 0
