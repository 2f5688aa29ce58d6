"""Multi-turn chat over an index: history is kept and each turn retrieves again."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .answering import Answer

if TYPE_CHECKING:
    from .index import Index

__all__ = ["Conversation"]


class Conversation:
    """A chat session; follow-up questions are searched together with the previous one."""

    #: Messages of history sent to the model (older turns fall out of the window, and
    #: :meth:`Index.ask_stream` leaves out the oldest of these first when the prompt
    #: would not fit ``num_ctx``; ``last.note`` then says so).
    HISTORY = 6

    #: Models that are sent no earlier turns: smollm2:135m, shown its previous answer,
    #: repeats it (word for word under greedy decoding) instead of answering the follow-up.
    #: On 5 follow-ups over the guide corpus, the second answer shared 0.48 of the first's
    #: text with history and 0.26 without.  Their follow-ups still get the previous
    #: question's topic through the search query (:meth:`search_query`).
    NO_HISTORY_MODELS = frozenset({"smollm2:135m"})

    def __init__(
        self,
        index: Index,
        *,
        k: int = 4,
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        retrieval: str = "hybrid",
        min_score: float | None = None,
        force: bool = False,
        paths: Sequence[str] | None = None,
        diversity: float = 0.0,
        answer: str = "auto",
    ) -> None:
        self.index = index
        self.answer = answer  # extractive, generate or auto: see Index.ask_stream
        self.k = k
        self.retrieval = retrieval
        self.min_score, self.force = min_score, force
        self.paths, self.diversity = paths, diversity
        self.model = model
        self.options = dict(options or {})
        self.history: list[dict[str, Any]] = []
        self.last: Answer | None = None

    def search_query(self, question: str) -> str:
        """The retrieval query for a turn: the previous question gives a follow-up its topic.

        >>> c = Conversation(None)  # type: ignore[arg-type]
        >>> c.history = [{"role": "user", "content": "How do I rebuild an index?"},
        ...              {"role": "assistant", "content": "Use --rebuild [1]."}]
        >>> c.search_query("and how long does it take?")
        'How do I rebuild an index?\\nand how long does it take?'
        """
        previous = [m["content"] for m in self.history if m["role"] == "user"][-1:]
        return "\n".join([*previous, question])

    def model_history(self) -> list[dict[str, Any]]:
        """The earlier messages the model is sent with the next question."""
        model = self.model or self.index.chat_model
        return [] if model in self.NO_HISTORY_MODELS else self.history[-self.HISTORY :]

    def ask_stream(self, question: str) -> Iterator[str]:
        """Stream the answer to the next question; afterwards :attr:`last` holds it."""
        stream = self.index.ask_stream(
            question,
            k=self.k,
            mode="chat",
            model=self.model,
            options=self.options,
            history=self.model_history(),
            search_query=self.search_query(question),
            retrieval=self.retrieval,
            min_score=self.min_score,
            force=self.force,
            paths=self.paths,
            diversity=self.diversity,
            answer=self.answer,
        )
        yield from stream
        self.last = stream.answer
        self.history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": self.last.text},
        ]
