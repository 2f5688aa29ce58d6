"""``ragkit eval --calibrate``: the relevance threshold an index's own questions call for.

``ask`` answers "not in the documents" when :func:`ragkit.answering.relevance` of
its top hits stays below a threshold.  Calibrating asks questions that the index
answers (a BEIR set's dev or test half, or a questions JSONL) and, when given,
questions it does not (off-topic), and picks the highest threshold that refuses
at most :data:`MAX_REFUSED` of the answerable ones; the off-topic refusal rate
is what that threshold buys.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .answering import relevance
from .errors import UsageError
from .retrieval import Hit

__all__ = ["ASK_K", "MAX_REFUSED", "Calibration", "calibrate", "load_off_topic",
           "relevances"]

#: At most this share of answerable questions may be refused.
MAX_REFUSED = 0.05
#: Chunks `ask` retrieves by default: the relevance is measured on the same.
ASK_K = 4


@dataclass(frozen=True)
class Calibration:
    """The threshold found, and what it refuses."""

    threshold: float
    answerable: int
    answerable_refused: float
    off_topic: int
    off_topic_refused: float | None  # None: no off-topic questions were given

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def relevances(questions: Sequence[str], search: Callable[[str, int], list[Hit]],
               progress: Callable[[int, int], None] | None = None) -> list[float]:
    """The relevance ``ask`` computes for each question (-inf when nothing was retrieved)."""
    scores = []
    for n, question in enumerate(questions, 1):
        score = relevance(question, search(question, ASK_K))
        scores.append(-math.inf if score is None else score)
        if progress:
            progress(n, len(questions))
    return scores


def calibrate(answerable: Sequence[float], off_topic: Sequence[float] = (),
              max_refused: float = MAX_REFUSED) -> Calibration:
    """The highest threshold (to 0.001, rounded down) refusing at most ``max_refused``.

    A question is refused when its relevance is below the threshold, so the
    threshold is the relevance of the (n x max_refused + 1)-th weakest question.

    >>> c = calibrate([0.1, 0.5, 0.6, 0.7] * 5 + [0.9], [0.2, 0.55])
    >>> c.threshold, round(c.answerable_refused, 3), c.off_topic_refused
    (0.1, 0.0, 0.0)
    >>> c = calibrate([0.3] + [0.8] * 19, [0.2, 0.55])
    >>> c.threshold, c.answerable_refused, c.off_topic_refused
    (0.8, 0.05, 1.0)
    """
    scores = sorted(answerable)
    if not scores:
        raise UsageError("no answerable questions to calibrate on — the set or file is empty")
    weakest = scores[int(max_refused * len(scores))]
    threshold = math.floor(weakest * 1000) / 1000 if math.isfinite(weakest) else 0.0
    refused = sum(s < threshold for s in scores) / len(scores)
    off = [s < threshold for s in off_topic]
    return Calibration(threshold, len(scores), refused, len(off),
                       sum(off) / len(off) if off else None)


def load_off_topic(path: Path) -> list[str]:
    """Off-topic questions: a BEIR folder's queries.jsonl, a JSONL with "question" (or
    "text") fields, or a text file with one question a line."""
    from .evaluate import _jsonl

    if path.is_dir():
        path = path / "queries.jsonl"
        if not path.is_file():
            raise UsageError(f"{path} not found — --off-topic takes a BEIR folder, a JSONL "
                             "of questions or a text file with one question a line")
    if path.suffix == ".jsonl":
        rows = list(_jsonl(path))
        questions = [str(r.get("question") or r.get("text") or "").strip() for r in rows]
    else:
        questions = path.read_text(encoding="utf-8").splitlines()
    questions = [q.strip() for q in questions if q.strip()]
    if not questions:
        raise UsageError(f"{path} holds no questions — give one per line (or JSONL lines "
                         'with "question")')
    return questions
