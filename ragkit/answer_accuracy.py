"""``ragkit eval --answers``: how often ``ask``'s answers contain a gold answer span.

A BEIR folder with ``answers.jsonl`` (``_id``, ``answers``: the gold spans) is
asked question by question, and the share of answers containing a gold span
after white space normalization is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import EmptyAnswerError, UsageError
from .evaluate import BeirSet, _jsonl
from .metrics import percentile

__all__ = [
    "AnswerEvalResult",
    "contains_gold",
    "evaluate_answers",
    "load_gold_answers",
    "normalize_space",
    "sample_questions",
]


def load_gold_answers(folder: Path) -> dict[str, list[str]]:
    """``answers.jsonl`` of a BEIR folder: query id -> its gold answer spans."""
    path = folder / "answers.jsonl"
    if not path.is_file():
        raise UsageError(f"{path} not found — --answers needs the gold answer spans, one "
                         'JSON line per query: {"_id": "...", "answers": ["..."]}')
    gold: dict[str, list[str]] = {}
    for n, row in enumerate(_jsonl(path), 1):
        spans = row.get("answers")
        if "_id" not in row or not isinstance(spans, list) or not all(
                isinstance(s, str) for s in spans):
            raise UsageError(f"{path}:{n}: each line needs \"_id\" and a list of \"answers\"")
        gold[str(row["_id"])] = spans
    return gold


def normalize_space(text: str) -> str:
    """Runs of white space as one space, ends trimmed.

    >>> normalize_space("  From the\\n documents:\\t 02:00 ")
    'From the documents: 02:00'
    """
    return " ".join(text.split())


def contains_gold(answer: str, spans: Sequence[str]) -> bool:
    """Whether ``answer`` contains one of the gold ``spans``, white space normalized.

    >>> contains_gold("Backups run at\\n02:00 [1].", ["at 02:00", "nightly"])
    True
    """
    text = normalize_space(answer)
    return any(normalize_space(s) and normalize_space(s) in text for s in spans)


@dataclass(frozen=True)
class AnswerEvalResult:
    """How often ``ask``'s answers contain a gold span, on (a sample of) one dataset."""

    dataset: str
    answer_mode: str
    #: Questions asked (the sample), and how many the set has.
    questions: int
    of: int
    #: Share of the asked questions whose answer contains a gold span.
    contains_gold: float
    #: Share answered at all (not refused as "not in the documents").
    answered: float
    p50_ms: float
    p95_ms: float

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def sample_questions(queries: dict[str, str], gold: dict[str, list[str]],
                     limit: int | None, seed: int) -> list[tuple[str, str]]:
    """The questions that have gold spans: all, or ``limit`` of them drawn with ``seed``.

    >>> sample_questions({"a": "A?", "b": "B?", "c": "C?"}, {"a": ["x"], "c": ["y"]}, None, 0)
    [('a', 'A?'), ('c', 'C?')]
    """
    import random

    pairs = [(qid, text) for qid, text in queries.items() if gold.get(qid)]
    if limit is not None and limit < len(pairs):
        pairs = sorted(random.Random(seed).sample(pairs, limit))
    return pairs


def evaluate_answers(
    data: BeirSet,
    gold: dict[str, list[str]],
    ask: Callable[[str], Any],
    answer_mode: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    details: Callable[[dict[str, Any]], None] | None = None,
) -> AnswerEvalResult:
    """Ask each (sampled) question with ``ask`` and check its answer against the gold spans.

    ``ask`` returns an :class:`~ragkit.answers.Answer`; ``details`` receives one
    record per question (id, question, gold, contained, the answer's JSON form).
    """
    chosen = sample_questions(data.queries, gold, limit, seed)
    hits, answered, latencies = 0, 0, []
    for n, (qid, question) in enumerate(chosen, 1):
        started = time.perf_counter()
        try:
            answer = ask(question)
        except EmptyAnswerError as exc:  # the model wrote nothing: answered, and wrong
            answer = None
            empty = str(exc)
        latencies.append((time.perf_counter() - started) * 1000)
        contained = bool(answer and answer.found and contains_gold(answer.text, gold[qid]))
        hits += contained
        answered += answer.found if answer else True
        if details:
            details({"_id": qid, "question": question, "gold": gold[qid],
                     "contains_gold": contained,
                     "answer": answer.as_dict() if answer else {"error": empty}})
        if progress:
            progress(answer_mode, n, len(chosen))
    total = len(chosen) or 1
    return AnswerEvalResult(data.name, answer_mode, len(chosen), len(data.queries),
                            hits / total, answered / total, percentile(latencies, 50),
                            percentile(latencies, 95))
