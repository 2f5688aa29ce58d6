"""Cutting text into answer units: sentences, list items, ``Key: value`` lines, table rows.

Used on both sides of an answer: extractive answers quote units of the
retrieved passages (:mod:`ragkit.extractive`), and the grounding check looks
up each unit of a generated answer in the passages (:mod:`ragkit.grounding`).

A sentence ends only at a real sentence end: ``.``, ``!`` or ``?`` followed by
white space (or the end of the text) and not part of an abbreviation
(``e.g.``, ``Dr.``), an initial (``J. Smith``) or an ordered-list marker, or
at ``。！？``.  The dots of ``2.0``, ``Apache-2.0``, ``3.14`` and
``https://example.org/a.html`` are followed by a letter or digit, so they are
never ends, and a citation marker put at a sentence end cannot land inside
such a token.  A line break ends a unit only at a blank line or where a list
item, table row, heading or ``Key: value`` line starts, so hard-wrapped prose
stays whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ABBREVIATIONS", "Unit", "sentence_spans", "split_sentences", "text_units"]

#: Words that end with a dot without ending a sentence (lowercase, without their last dot).
ABBREVIATIONS = frozenset({
    "a.m", "al", "approx", "apr", "aug", "ave", "ca", "cf", "co", "corp", "dec", "dept", "dr",
    "e.g", "eq", "esp", "est", "etc", "feb", "fig", "figs", "gen", "gov", "i.e", "inc", "jan",
    "jr", "jul", "jun", "lt", "ltd", "mar", "max", "min", "mr", "mrs", "ms", "mt", "no", "nos",
    "nov", "oct", "op", "p", "p.m", "pp", "prof", "ref", "rev", "sec", "sen", "sep", "sept",
    "sgt", "sr", "st", "u.k", "u.n", "u.s", "u.s.a", "viz", "vol", "vs",
})

_CJK_END = "。！？"
# Quotes and brackets that close a sentence after its end mark: 'He left." Then'.
_CLOSERS = "\"')]}»”’」』）"
# A candidate end: end marks, closers, then white space or the end of the text.
_END = re.compile(rf"[.!?]+[{re.escape(_CLOSERS)}]*(?=\s|$)|[{_CJK_END}]+[{re.escape(_CLOSERS)}]*")
# Citation marks written after a sentence's end belong to it: "It runs at 2. [1] Next."
_TRAILING_CITES = re.compile(r"(?:[^\S\n]*\[\d+(?:\s*[,;]\s*\d+)*\])+")


def _is_end(text: str, match: re.Match[str], start: int, end: int) -> bool:
    """Whether the end-mark run ``match`` really ends a sentence that began at ``start``."""
    marks = match.group()
    if marks[0] in _CJK_END:
        return True
    rest = text[match.end():min(end, match.end() + 8)].lstrip()
    if rest[:1].islower():  # "approx. three", "Yahoo! is": the sentence goes on
        return False
    if marks.rstrip(_CLOSERS) != ".":  # "!", "?", "...": a real end before anything else
        return True
    words = text[max(start, match.start() - 40):match.start()].split()
    token = words[-1] if words else ""
    bare = token.lstrip("(\"'[“‘").lower()
    if bare in ABBREVIATIONS or (len(bare) == 1 and bare.isalpha() and bare != "i"
                                 and token[-1:].isupper()):
        return False  # an abbreviation, or an initial such as "J. Smith"
    # "1." alone at the start of a line is a list marker, not a sentence.
    line_start = text.rfind("\n", 0, match.start()) + 1
    return not (token.isdigit() and not text[line_start:match.start() - len(token)].strip())


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text[start:end]``, white space trimmed.

    Line breaks are taken as spaces (see :func:`text_units` for line structure).

    >>> s = "Use Apache-2.0 (see https://x.org/a.html). Dr. J. Smith wrote v1.2.3! Then: 3.5 m."
    >>> [s[a:b] for a, b in sentence_spans(s)]
    ['Use Apache-2.0 (see https://x.org/a.html).', 'Dr. J. Smith wrote v1.2.3!', 'Then: 3.5 m.']
    >>> t = "熊猫吃竹子。[1] 它们很可爱！好"
    >>> [t[a:b] for a, b in sentence_spans(t)]
    ['熊猫吃竹子。[1]', '它们很可爱！', '好']
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    begin = start
    for match in _END.finditer(text, start, end):
        if match.start() < begin or not _is_end(text, match, begin, end):
            continue
        cites = _TRAILING_CITES.match(text, match.end(), end)
        stop = cites.end() if cites else match.end()
        spans.append((begin, stop))
        begin = stop
    spans.append((begin, end))
    return [trimmed for a, b in spans if (trimmed := _trim(text, a, b))]


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span without its surrounding white space, or None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see :func:`sentence_spans`).

    >>> split_sentences("It costs 3.50 dollars, i.e. a lot. See No. 5 at 10 a.m. Done.")
    ['It costs 3.50 dollars, i.e. a lot.', 'See No. 5 at 10 a.m. Done.']
    """
    return [text[a:b] for a, b in sentence_spans(text)]


@dataclass(frozen=True)
class Unit:
    """A piece of text that can answer on its own: a sentence, item, field or table row."""

    start: int
    end: int
    #: ``sentence``, ``item`` (list item), ``field`` (``Key: value``), ``row`` (table row)
    #: or ``heading`` (context only, never an answer).
    kind: str
    #: Index of the block (paragraph, list, table) the unit belongs to.
    block: int


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+\S")
_ROW = re.compile(r"^\s*\|.*\|\s*$")
_RULE = re.compile(r"^[\s:|-]*-[\s:|-]*$")  # |---|:-:| under a table header, or ---
# A short key without sentence punctuation, a colon, then a value on the same line.
_FIELD = re.compile(r"^[A-Za-z][\w .()/-]{0,39}:[ \t]+\S")
# A prose line ending so may be followed by a list item or field (else that line wraps on).
_CLOSES_LINE = (".", "!", "?", ":", "。", "！", "？", "：")
# Longer than this, an item or field is cut into its sentences.
MAX_UNIT = 400


def _kind(line: str) -> str:
    """What a line starts: heading, item, row, rule, field, blank or text."""
    if not line.strip():
        return "blank"
    for kind, pattern in (("heading", _HEADING), ("rule", _RULE), ("row", _ROW),
                          ("item", _ITEM), ("field", _FIELD)):
        if pattern.match(line):
            return kind
    return "text"


def text_units(text: str) -> list[Unit]:
    """The answer units of ``text``, in reading order.

    >>> t = "# Setup\\nRun it.\\nThen wrap\\nhere. Done.\\n- one item\\nLicense: MIT\\n"
    >>> t += "|a|b|\\n|-|-|"
    >>> [(t[u.start:u.end], u.kind) for u in text_units(t)]  # doctest: +NORMALIZE_WHITESPACE
    [('# Setup', 'heading'), ('Run it.', 'sentence'), ('Then wrap\\nhere.', 'sentence'),
     ('Done.', 'sentence'), ('- one item', 'item'), ('License: MIT', 'field'),
     ('|a|b|', 'row')]
    """
    units: list[Unit] = []
    block = -1
    for start, end, kind, new_block in _line_groups(text):
        if new_block:
            block += 1
        if kind == "text" or (kind in ("item", "field") and end - start > MAX_UNIT):
            units.extend(Unit(a, b, "sentence" if kind == "text" else kind, block)
                         for a, b in sentence_spans(text, start, end))
        elif kind != "rule":
            units.append(Unit(start, end, kind, block))
    return units


def _line_groups(text: str) -> list[tuple[int, int, str, bool]]:
    """Runs of lines that form one unit or prose paragraph: ``(start, end, kind, new block)``.

    A prose line continues the group before it (hard-wrapped text), as does an
    indented line after an item or field; a block is a paragraph, list or table.
    """
    groups: list[tuple[int, int, str, bool]] = []
    previous = "blank"
    pos = 0
    last = ""
    for line in text.splitlines(keepends=True):
        kind = _kind(line)
        if kind in ("item", "field") and previous == "text" and not last.endswith(_CLOSES_LINE):
            kind = "text"  # "...a larger batch makes embedding\nfaster: use 256." is prose
        line_end = pos + len(line.rstrip("\r\n"))
        continues = bool(groups) and kind == "text" and previous in ("text", "item", "field")
        if kind == "blank":
            pass
        elif continues:
            start, _, group_kind, new_block = groups[-1]
            if group_kind == "field" and not line[:1].isspace():
                group_kind = "text"  # "Note: this wraps\nonto a second line" is prose
            groups[-1] = (start, line_end, group_kind, new_block)
            kind = group_kind
        else:
            same_block = previous == kind and kind in ("item", "row", "rule", "field")
            table = previous in ("row", "rule") and kind in ("row", "rule")
            groups.append((pos, line_end, kind, not (same_block or table)))
        previous, last = kind, line.rstrip()
        pos += len(line)
    return [g for g in groups if _trim(text, g[0], g[1])]
