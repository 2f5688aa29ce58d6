"""The one interface every model backend implements.

The Ollama client (:mod:`ragkit.backends.ollama`) and the embedded engine
(:mod:`ragkit.backends.embedded`) both satisfy :class:`Backend`; nothing above this layer
knows which one runs.  Generation streams :class:`StreamChunk` objects: text
deltas, then one final chunk with ``done=True``, the ``done_reason`` and the
:class:`Metrics` Ollama reports (durations in nanoseconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import VectorError

__all__ = [
    "Backend",
    "Message",
    "Metrics",
    "Reply",
    "StreamChunk",
    "check_vectors",
    "collect",
    "normalize_rows",
]

#: A chat message as Ollama takes it: ``{"role": "user", "content": "..."}``.
Message = Mapping[str, Any]


@dataclass(frozen=True)
class Metrics:
    """Counters from the final record of a generation; durations in nanoseconds."""

    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Metrics:
        """Pick the metric fields out of an Ollama response record.

        >>> Metrics.from_record({"eval_count": 7, "done": True}).eval_count
        7
        """
        return cls(**{f.name: _count(record.get(f.name)) for f in fields(cls)})

    @property
    def tokens_per_second(self) -> float:
        """Generation speed, as Ollama's ``--verbose`` computes it.

        >>> Metrics(eval_count=50, eval_duration=2_000_000_000).tokens_per_second
        25.0
        """
        return self.eval_count / self.eval_duration * 1e9 if self.eval_duration else 0.0

    def as_dict(self) -> dict[str, int]:
        """The metrics as a plain dict, keyed by Ollama's field names."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class StreamChunk:
    """One piece of a streamed generation."""

    text: str = ""
    done: bool = False
    done_reason: str | None = None
    metrics: Metrics | None = None


@dataclass(frozen=True)
class Reply:
    """A whole generation: its text, why it stopped, and its metrics."""

    text: str
    done_reason: str | None
    metrics: Metrics


def collect(chunks: Iterable[StreamChunk]) -> Reply:
    """Drain a stream into one :class:`Reply`.

    >>> collect([StreamChunk("Hi"), StreamChunk(" there"),
    ...          StreamChunk(done=True, done_reason="stop", metrics=Metrics(eval_count=2))])
    Reply(text='Hi there', done_reason='stop', metrics=Metrics(total_duration=0, \
load_duration=0, prompt_eval_count=0, prompt_eval_duration=0, eval_count=2, eval_duration=0))
    """
    parts: list[str] = []
    done_reason: str | None = None
    metrics = Metrics()
    for chunk in chunks:
        parts.append(chunk.text)
        if chunk.done:
            done_reason = chunk.done_reason
            metrics = chunk.metrics or Metrics()
    return Reply("".join(parts), done_reason, metrics)


@runtime_checkable
class Backend(Protocol):
    """What ragkit needs from a model server: embeddings and streamed generation."""

    #: Short name shown to users: ``"ollama"`` or ``"embedded"``.
    name: str

    def describe(self) -> str:
        """One line saying what this backend is, e.g. ``Ollama at http://127.0.0.1:11434``."""
        ...

    def has_model(self, model: str) -> bool:
        """Whether ``model`` can be used right now without pulling anything."""
        ...

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in one batch; returns L2-normalized float32 rows, shape (n, dim)."""
        ...

    def generate(
        self,
        model: str,
        prompt: str,
        *,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        raw: bool = False,
        keep_alive: str | float | None = None,
        format: str | Mapping[str, Any] | None = None,
        images: Sequence[str] | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream a completion of a prompt (``raw=True``: the prompt is used verbatim)."""
        ...

    def chat(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        format: str | Mapping[str, Any] | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream the assistant's next message, formatted with the model's chat template."""
        ...

    def special_tokens(self, model: str) -> Sequence[str]:
        """The special tokens of ``model``'s chat template, as text (empty when unknown).

        Prompts defuse them in document text, so that no document can end a turn.
        """
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalize each row (zero rows stay zero); returns float32.

    Norms are taken in float64, where no float32 value overflows when squared.

    >>> normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    >>> normalize_rows(np.array([[3e30, 4e30]], dtype=np.float32)).round(3).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    arr = np.asarray(vectors, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (arr / norms).astype(np.float32)


#: The largest float32: an embedding value beyond it cannot be stored.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_vectors(rows: Any, count: int, *, source: str, advice: str,
                  width: int | None = None) -> np.ndarray:
    """``count`` embeddings as L2-normalized float32 rows; :class:`VectorError` if unusable.

    Each vector must be a non-empty list of numbers (not strings, null,
    booleans or lists), all of one length (``width`` if given), finite and
    within float32's range, and not all zeros: a zero vector matches nothing.
    The error reads ``{source} ... — {advice}``.

    >>> check_vectors([[0.0, 2.0]], 1, source="s", advice="a").tolist()
    [[0.0, 1.0]]
    >>> check_vectors([[0.0, float("nan")]], 1, source="The reply", advice="fix it")
    Traceback (most recent call last):
    ragkit.errors.VectorError: The reply has an unusable vector (1 of 1): NaN — fix it
    """
    if isinstance(rows, np.ndarray):
        rows = rows.tolist()
    if not isinstance(rows, list) or len(rows) != count:
        held = f"{len(rows)} vectors" if isinstance(rows, list) else f"{_kind(rows)}"
        texts = "one text" if count == 1 else f"{count} texts"
        raise VectorError(f"{source} holds {held} for {texts} — {advice}")
    if count == 0:
        return np.zeros((0, width or 0), dtype=np.float32)
    if width is None and isinstance(rows[0], list):
        width = len(rows[0])
    for i, row in enumerate(rows, 1):
        if (problem := _problem(row, width)) is not None:
            raise _unusable(source, i, count, problem, advice)
    numbers = np.array(rows, dtype=np.float64)
    problem, i = _value_problem(numbers)
    if problem is not None:
        raise _unusable(source, i, count, problem, advice)
    return (numbers / np.linalg.norm(numbers, axis=1, keepdims=True)).astype(np.float32)


def _unusable(source: str, i: int, count: int, problem: str, advice: str) -> VectorError:
    return VectorError(f"{source} has an unusable vector ({i} of {count}): {problem} — {advice}")


def _problem(row: Any, width: int | None) -> str | None:
    """What is wrong with the shape or the types of one vector, if anything."""
    if not isinstance(row, list):
        return f"{_kind(row)} instead of a list of numbers"
    if not row:
        return "no numbers"
    if len(row) != width:
        return f"{len(row)} numbers where the others have {width}"
    kinds = set(map(type, row))
    if not kinds <= {float, int}:
        odd = next(x for x in row if type(x) not in (float, int))
        return f"{_kind(odd)} among its numbers"
    if int in kinds and any(type(x) is int and abs(x) > _FLOAT32_MAX for x in row):
        return "a number beyond float32's range"
    return None


def _value_problem(numbers: np.ndarray) -> tuple[str | None, int]:
    """The first vector (1-based) that is not finite, out of range or all zeros, and why."""
    with np.errstate(all="ignore"):
        finite = np.isfinite(numbers).all(axis=1)
        in_range = (np.abs(numbers) <= _FLOAT32_MAX).all(axis=1)
        nonzero = (numbers != 0).any(axis=1)
    for i in np.flatnonzero(~(finite & in_range & nonzero)):
        row = numbers[i]
        if not finite[i]:
            return ("NaN" if np.isnan(row).any() else "an infinite value"), int(i) + 1
        if not in_range[i]:
            big = row[np.abs(row) > _FLOAT32_MAX][0]
            return f"{big:.3g}, beyond float32's range", int(i) + 1
        return "all zeros (it would match nothing)", int(i) + 1
    return None, 0


def _kind(value: Any) -> str:
    """How a JSON value that should be a number or a list is named in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:20]!r}"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    return type(value).__name__


def _count(value: Any) -> int:
    """A metric as an int; anything else a server sends (text, NaN, null) counts as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value) if np.isfinite(value) else 0
