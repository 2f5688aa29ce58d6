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
  embeddings, for the best units by keywords (at most :data:`CANDIDATES`,
  and only those within :data:`SHORTLIST_SHARE` of the best), in one batched
  embedding call.  That bounds the cost, about 10 ms a unit for all-minilm
  on two cores: 2.8 units a question on XQuAD-en, for 0.3 points of accuracy
  less than embedding 6 (measured by the share of answers holding a gold span).

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

from .retrieval import Hit
from .sentences import Unit, text_units
from .store.keywords import keyword_terms

__all__ = ["CANDIDATES", "FRAME", "Excerpt", "content_terms", "extract", "render"]

#: The first line of an extractive answer: the text below is quoted, not written.
FRAME = "From the documents:"

#: Units embedded per question (the best by keywords); the rest are left out.
CANDIDATES = 6
#: Only units with at least this share of the best keyword score are embedded.
SHORTLIST_SHARE = 0.4
#: A question word found only in a unit's section heading counts this much.
HEADING_SHARE = 0.5
#: Weight of the keyword share next to the cosine in a unit's score.
KEYWORD_WEIGHT = 1.0
#: A unit after the best one is kept when it scores at least this share of the best.
KEEP_SHARE = 0.85
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
    r"however|also|but|so|thus|therefore|otherwise|instead|here|there)\b",
    re.IGNORECASE)


def _stem(term: str) -> str:
    """A crude English stem, so "runs", "running" and "run" meet (CJK and short words stay).

    >>> [_stem(w) for w in ("backups", "running", "indexed", "boxes", "stories", "bus", "熊猫")]
    ['backup', 'run', 'index', 'box', 'story', 'bus', '熊猫']
    """
    if len(term) <= 3 or not term.isascii():
        return term
    if term.endswith("ies") and len(term) > 4:
        term = term[:-3] + "y"
    elif term.endswith("es") and term[:-2].endswith(("s", "x", "z", "ch", "sh")):
        term = term[:-2]
    elif term.endswith("s") and not term.endswith(("ss", "us", "is")):
        term = term[:-1]
    for suffix in ("ing", "ed"):
        if term.endswith(suffix) and len(term) - len(suffix) >= 3:
            term = term[: -len(suffix)]
            if term[-1] == term[-2] and term[-1] not in "lsz":  # "runn" -> "run"
                term = term[:-1]
            break
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
    sections = [_sections(h) for h in hits]
    units = [[u for u, _ in section] for section in sections]
    candidates = _keyword_candidates(question, hits, sections)
    if not candidates:
        return []
    ranked = sorted(candidates, key=lambda c: -c.keywords)
    floor = ranked[0].keywords * SHORTLIST_SHARE
    shortlist = [c for c in ranked[:CANDIDATES] if c.keywords >= floor] or ranked[:1]
    cosines = _cosines(question, [c.text for c in shortlist], embed, query_vector)
    scored = sorted(((dense * 2 * cos + (1 - dense) * 2 * KEYWORD_WEIGHT * c.keywords
                      - RANK_PENALTY * (c.n - 1), c)
                     for c, cos in zip(shortlist, cosines, strict=True)),
                    key=lambda pair: -pair[0])
    scored = _distinct(scored)
    best = scored[0][0]
    kept = [(s, c) for s, c in scored[:MAX_UNITS] if s >= best * KEEP_SHARE or c is scored[0][1]]
    return _excerpts(hits, units, kept)


def _distinct(scored: list[tuple[float, _Candidate]]) -> list[tuple[float, _Candidate]]:
    """``scored`` without the units whose text a better one already says (copies of a file)."""
    seen: set[str] = set()
    out = []
    for score, c in scored:
        key = " ".join(c.text.split()).casefold()
        if key not in seen:
            seen.add(key)
            out.append((score, c))
    return out


def _sections(hit: Hit) -> list[tuple[Unit, str]]:
    """The answer units of a passage, each with the heading of its section.

    A heading line in the passage heads the units after it; before the first
    one, the passage's own heading path does (its last part).
    """
    heading = hit.heading.rsplit(">", 1)[-1].strip()
    out = []
    for unit in text_units(hit.text):
        if unit.kind == "heading":
            heading = hit.text[unit.start:unit.end].strip().lstrip("#").strip()
        else:
            out.append((unit, heading))
    return out


def _keyword_candidates(question: str, hits: Sequence[Hit],
                        sections: list[list[tuple[Unit, str]]]) -> list[_Candidate]:
    """Every unit with its rarity-weighted share of the question's content words.

    A unit's words include its section heading's, at :data:`HEADING_SHARE`: under
    "Text encodings", "ragkit reads UTF-8 files" answers "Which text encodings
    are supported?".
    """
    asked = content_terms(question)
    own = [[content_terms(h.text[u.start:u.end]) for u, _ in section]
           for h, section in zip(hits, sections, strict=True)]
    headed = [[content_terms(heading) for _, heading in section] for section in sections]
    count = sum(len(f) for f in own)
    frequency = {t: sum(t in terms for fs in own for terms in fs) for t in asked}
    weight = {t: math.log(1 + count / (1 + frequency[t])) for t in asked}
    norm = sum(weight.values()) or 1.0

    def share(terms: set[str], heading: set[str]) -> float:
        inherited = (asked & heading) - terms  # count half: the heading is shared by a section
        return (sum(weight[t] for t in asked & terms)
                + HEADING_SHARE * sum(weight[t] for t in inherited)) / norm

    return [
        _Candidate(n, u, i, share(terms, heading), hit.text[u.start:u.end])
        for n, (hit, section, fs, hs) in enumerate(zip(hits, sections, own, headed,
                                                       strict=True), 1)
        for i, ((u, _), terms, heading) in enumerate(zip(section, fs, hs, strict=True))
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
        return first if first == i - 1 else i  # only when it is next: excerpts are contiguous
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
