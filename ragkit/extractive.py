"""Extractive answers: the passages' own sentences that best answer the question, quoted.

When the chat model is too small to trust (the 135M demo model) or none can be
reached, ``ask`` answers with excerpts instead of a model's prose.  The
retrieved passages are cut into answer units (:func:`ragkit.sentences.text_units`:
sentences, list items, ``Key: value`` lines, table rows) and each unit is
scored against the question:

* **keywords:** the share of the question's content words the unit holds,
  each word weighted by how rare it is among the units (a word every unit has
  says nothing);
* **meaning:** the cosine similarity of the unit's and the question's
  embeddings, for the :data:`CANDIDATES` best units by keywords, in one
  batched embedding call (which bounds the cost: about 10 ms a unit for
  all-minilm on two cores).

The 1 to 3 best units are kept verbatim, in reading order, each with its
passage number, plus the sentence before one that starts with a pronoun (and
a table's header row, a list's lead-in line) so that it makes sense alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .keywords import keyword_terms
from .retrieval import Hit
from .sentences import Unit, text_units

__all__ = ["CANDIDATES", "FRAME", "Excerpt", "content_terms", "extract", "render"]

#: The first line of an extractive answer: the text below is quoted, not written.
FRAME = "From the documents:"

#: Units embedded per question (the best by keywords); the rest are left out.
CANDIDATES = 6
#: Weight of the keyword share next to the cosine in a unit's score.
KEYWORD_WEIGHT = 1.0
#: A unit after the best one is kept when it scores at least this share of the best.
KEEP_SHARE = 0.9
MAX_UNITS = 3
#: Each lower-ranked passage costs its units this much (the best passage is most likely right).
RANK_PENALTY = 0.02

STOP_WORDS = frozenset([
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "but", "by", "can", "could", "did", "do", "does", "during", "for", "from", "had",
    "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "many", "may", "much", "my", "not", "of", "on", "one", "or", "other", "our", "she", "so",
    "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "to", "two", "up", "use", "used", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "whom", "whose", "why", "will", "with", "would", "you",
    "your", "什么", "哪个", "哪些", "多少", "是什", "为什", "怎么", "如何", "谁是",
])

# A sentence that leans on the one before: "It ...", "This means ...", "However, ...".
_LEANS = re.compile(
    r"^(?:it|its|this|that|these|those|they|them|their|he|she|his|her|such|both|then|"
    r"however|also|but|so|thus|therefore|otherwise|instead|here|there)\b|^[a-z]",
    re.IGNORECASE)


def _stem(term: str) -> str:
    """A crude English stem, so "runs" meets "run" (CJK and short words are left alone).

    >>> [_stem(w) for w in ("backups", "running", "indexed", "bus", "熊猫")]
    ['backup', 'runn', 'index', 'bus', '熊猫']
    """
    if len(term) <= 4 or not term.isascii():
        return term
    for suffix in ("ing", "ed", "es", "s"):
        if term.endswith(suffix) and len(term) - len(suffix) >= 3:
            return term[: -len(suffix)]
    return term


def content_terms(text: str) -> set[str]:
    """The stemmed words of ``text`` that carry content (stop words left out).

    >>> sorted(content_terms("When do the backups run [1]?"))
    ['backup', 'run']
    """
    text = re.sub(r"\[\d+(?:\s*[,;]\s*\d+)*\]", " ", text)  # citation marks are not words
    return {_stem(t) for t in keyword_terms(text) if t not in STOP_WORDS}


@dataclass(frozen=True)
class Excerpt:
    """One quoted piece of an extractive answer: verbatim text of passage ``n``."""

    n: int
    text: str
    #: Offsets of ``text`` in the passage's chunk text.
    start: int
    end: int
    score: float
    #: The kind of the best unit in it: sentence, item, field or row.
    kind: str

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"n": self.n, "text": self.text, "start": self.start, "end": self.end,
                "score": round(self.score, 4), "kind": self.kind}


@dataclass(frozen=True)
class _Candidate:
    n: int  # passage number, 1-based
    unit: Unit
    position: int  # index among its passage's units
    keywords: float
    text: str


EmbedFn = Callable[[Sequence[str]], np.ndarray]


def extract(
    question: str,
    hits: Sequence[Hit],
    embed: EmbedFn | None,
    *,
    query_vector: np.ndarray | None = None,
    dense: float = 0.5,
) -> list[Excerpt]:
    """The 1 to :data:`MAX_UNITS` excerpts of ``hits`` that best answer ``question``.

    ``embed`` embeds a batch of texts (None: keywords only); ``query_vector`` is
    the question's embedding if the caller has it.  ``dense`` (0..1) is the
    share of meaning against keywords: lower for a language the embedding
    model does not read (see :func:`ragkit.retrieval.dense_weight`).
    Empty when the passages hold no answer unit.
    """
    units = [[u for u in text_units(h.text) if u.kind != "heading"] for h in hits]
    candidates = _keyword_candidates(question, hits, units)
    if not candidates:
        return []
    shortlist = sorted(candidates, key=lambda c: -c.keywords)[:CANDIDATES]
    cosines = _cosines(question, [c.text for c in shortlist], embed, query_vector)
    scored = sorted(((dense * 2 * cos + (1 - dense) * 2 * KEYWORD_WEIGHT * c.keywords
                      - RANK_PENALTY * (c.n - 1), c)
                     for c, cos in zip(shortlist, cosines, strict=True)),
                    key=lambda pair: -pair[0])
    best = scored[0][0]
    kept = [(s, c) for s, c in scored[:MAX_UNITS] if s >= best * KEEP_SHARE or c is scored[0][1]]
    return _excerpts(hits, units, kept)


def _keyword_candidates(question: str, hits: Sequence[Hit],
                        units: list[list[Unit]]) -> list[_Candidate]:
    """Every unit with its rarity-weighted share of the question's content words."""
    asked = content_terms(question)
    found = [[content_terms(h.text[u.start:u.end]) for u in us] for h, us in zip(hits, units,
                                                                                  strict=True)]
    total = sum(len(f) for f in found)
    frequency = {t: sum(t in terms for fs in found for terms in fs) for t in asked}
    weight = {t: math.log(1 + total / (1 + frequency[t])) for t in asked}
    norm = sum(weight.values()) or 1.0
    return [
        _Candidate(n, u, i, sum(weight[t] for t in asked & terms) / norm, hit.text[u.start:u.end])
        for n, (hit, us, fs) in enumerate(zip(hits, units, found, strict=True), 1)
        for i, (u, terms) in enumerate(zip(us, fs, strict=True))
    ]


def _cosines(question: str, texts: list[str], embed: EmbedFn | None,
             query_vector: np.ndarray | None) -> list[float]:
    """Cosine of each text with the question, in one embedding call (zeros without ``embed``)."""
    if embed is None or not texts:
        return [0.0] * len(texts)
    asked = [] if query_vector is not None else [question]
    vectors = embed([*asked, *texts])
    query = query_vector if query_vector is not None else vectors[0]
    return [float(v @ query) for v in vectors[len(asked):]]


def _excerpts(hits: Sequence[Hit], units: list[list[Unit]],
              kept: list[tuple[float, _Candidate]]) -> list[Excerpt]:
    """The kept units with the context they need, merged where they touch, in reading order."""
    spans: list[tuple[int, int, int, float, str]] = []  # (n, first, last unit index, ...)
    for score, c in kept:
        first = _context_start(hits[c.n - 1].text, units[c.n - 1], c.position)
        spans.append((c.n, first, c.position, score, c.unit.kind))
    spans.sort()
    merged: list[list[Any]] = []
    for n, first, last, score, kind in spans:
        if merged and merged[-1][0] == n and first <= merged[-1][2] + 1:
            merged[-1][2] = max(merged[-1][2], last)
            merged[-1][3] = max(merged[-1][3], score)
        else:
            merged.append([n, first, last, score, kind])
    out = []
    for n, first, last, score, kind in merged:
        text, us = hits[n - 1].text, units[n - 1]
        start, end = us[first].start, us[last].end
        out.append(Excerpt(n, text[start:end], start, end, score, kind))
    return out


def _context_start(text: str, units: list[Unit], i: int) -> int:
    """Index of the first unit to quote so that unit ``i`` makes sense on its own."""
    unit = units[i]
    previous = units[i - 1] if i > 0 else None
    if previous is None or (previous.block != unit.block and unit.kind == "sentence"):
        return i
    if unit.kind == "row":  # the header row names the columns
        first = i
        while first > 0 and units[first - 1].block == unit.block:
            first -= 1
        return first if first == i - 1 else i  # (only next to it: no run of rows)
    if unit.kind == "item" and previous.kind == "sentence" and \
            text[previous.start:previous.end].rstrip().endswith(":"):
        return i - 1  # the line that introduces the list
    if unit.kind == "sentence" and previous.block == unit.block and \
            _LEANS.match(text[unit.start:unit.end]):
        return i - 1
    return i


def render(excerpts: Sequence[Excerpt]) -> str:
    """The answer text: :data:`FRAME`, then one quoted line per excerpt with its ``[n]``.

    >>> print(render([Excerpt(2, "Backups run\\nat 02:00.", 0, 21, 1.0, "sentence")]))
    From the documents:
    > Backups run at 02:00. [2]
    """
    lines = [FRAME]
    for e in excerpts:
        lines.append(f"> {' '.join(e.text.split())} [{e.n}]")
    return "\n".join(lines)
